"""The write path's ordering rules as a state machine, against a power cut at any moment.

Hypothesis interleaves buffering, backlog commits (journal appends), checkpoints (day
file writes), syncs that succeed or fail, lost connections (buffered rows discarded and
redelivered) and power cuts.  A power cut is simulated exactly: every file is cut back
to the size it had at its last successful sync (``syncfs`` makes all files durable, the
journal's ``fdatasync`` only the journal), then a new DayFiles replays the journal as
pvsimd does at start.  The rules hold when, after every cut, each row that was
acknowledged — covered by a successful sync that began after its commit — is in its day
file, and no (meter, timestamp) is ever there twice.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pvsim import durable, wire
from pvsimd import csv_format
from tests.unit.pvsimd.harness import SiteDayFiles

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)
METERS = ("house-a", "house-b", "house-c")


class PowerCutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self._tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self._tmp.name) / "csv"
        self.dir.mkdir()
        self.files = self._new_files()
        self.durable_size: dict[Path, int] = {}  # size at the last sync that covered it
        self.next_minute = 0
        self.buffered: list[wire.Reading] = []  # since the last commit
        self.committed: list[wire.Reading] = []  # committed, not yet covered by a sync
        self.acked: set[tuple[str, int]] = set()
        self.unacked: list[wire.Reading] = []  # come back from the broker after a loss

    def _new_files(self) -> SiteDayFiles:
        files = SiteDayFiles(self.dir, BERLIN, fsync="batch", journal=True)
        files.sync_target()
        return files

    def teardown(self) -> None:
        self.files.open_files.close_all()
        if self.files.journal is not None:
            self.files.journal.close()
        self._tmp.cleanup()

    # --- events ------------------------------------------------------------------------

    @rule(meter=st.sampled_from(METERS), repeat=st.booleans())
    def deliver(self, meter: str, repeat: bool) -> None:
        if repeat and self.unacked:  # a redelivery of one the broker still has
            reading = self.unacked.pop(0)
        else:
            reading = wire.Reading(meter, T0 + timedelta(minutes=self.next_minute), 1.0)
            self.next_minute += 1
        self.files.add(reading, 2.0)
        self.buffered.append(reading)

    @rule()
    def commit_to_journal(self) -> None:
        if self.files.checkpoint_due(0.0):
            return  # pvsimd writes the day files then: see checkpoint
        self.files.append_to_journal(0.0)
        self.committed += self.buffered
        self.buffered = []

    @rule()
    def checkpoint(self) -> None:
        try:
            self.files.write()
        except OSError:
            return
        self.committed += self.buffered
        self.buffered = []

    @precondition(lambda self: self.committed)
    @rule(ok=st.booleans())
    def sync(self, ok: bool) -> None:
        if not ok:  # the rows since the last good sync are written again
            self.files.roll_back_unsynced()
            self.files.force_checkpoint()
            self.buffered = self.committed + self.buffered
            self.committed = []
            return
        journal_only = not self.files.unsynced
        self.files.sync()
        for path in self._all_files():
            if not journal_only or path.name == ".journal":
                self.durable_size[path] = path.stat().st_size
        self.files.mark_synced(self.files.commit_log.generation)
        self.acked |= {(r.meter_id, r.ts_us) for r in self.committed}
        self.committed = []

    @rule()
    def connection_lost(self) -> None:
        """pvsimd forgets what it has not acknowledged; the broker redelivers it."""
        self.files.discard_buffered()
        self.files.force_checkpoint()
        if not self.files.journal_holds_rows:
            self.unacked += [r for r in self.buffered + self.committed]
            self.buffered, self.committed = [], []

    @rule()
    def power_cut(self) -> None:
        self.files.open_files.close_all()
        self.files.journal.close()
        for path in self._all_files():
            size = self.durable_size.get(path, 0)
            with open(path, "r+b") as fh:
                fh.truncate(size)
        self.files = self._new_files()
        self.files.replay_journal()  # what pvsimd does at start
        durable.syncfs(self.files.sync_target())
        for path in self._all_files():
            self.durable_size[path] = path.stat().st_size
        # what was not acknowledged comes back from the broker
        self.unacked += [r for r in self.buffered + self.committed]
        self.buffered, self.committed = [], []
        on_disk = self._rows_on_disk()
        missing = self.acked - set(on_disk)
        assert not missing, f"acknowledged rows lost in a power cut: {sorted(missing)[:3]}"

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def no_row_twice(self) -> None:
        rows = self._rows_on_disk()
        assert len(rows) == len(set(rows)), "a reading has two rows"

    def _all_files(self) -> list[Path]:
        return sorted(p for p in self.dir.rglob("*") if p.is_file() and p.name != ".lock")

    def _rows_on_disk(self) -> list[tuple[str, int]]:
        rows = []
        for path in self.dir.glob("*/*.csv"):
            for line in path.read_text().splitlines()[1:]:
                row = csv_format.parse_row(line)
                rows.append((row.meter_id, wire.to_epoch_us(row.ts)))
        return rows


TestPowerCuts = PowerCutMachine.TestCase
TestPowerCuts.settings = settings(
    max_examples=int(os.environ.get("PVSIM_STATEFUL_EXAMPLES", "60")),
    stateful_step_count=30,
    deadline=None,
)
