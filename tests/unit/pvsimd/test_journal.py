"""The backlog journal: backlog commits append rows to one file, checkpoints write them to
their day files and empty it, and rows a crash left in it reach their day files once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pvsim import wire
from pvsimd import journal as journal_mod
from pvsimd.csv_format import HEADER
from pvsimd.service import PvSimDaemon
from tests.unit.pvsimd import harness
from tests.unit.pvsimd.harness import SiteDayFiles

TZ = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)


def reading(meter: str, minute: int, seq: int = 0) -> wire.Reading:
    return wire.Reading(meter, T0 + timedelta(minutes=minute), 1000.0 + minute, seq)


def data_rows(path: Path) -> list[str]:
    return path.read_text().splitlines()[1:] if path.exists() else []


def new_files(tmp_path: Path) -> SiteDayFiles:
    files = SiteDayFiles(tmp_path / "csv", TZ, fsync="batch", journal=True)
    files.directory.mkdir(exist_ok=True)
    return files


def test_appended_rows_wait_in_the_journal_until_a_write_makes_them_durable(tmp_path):
    files = new_files(tmp_path)
    for m in range(3):
        assert files.add(reading(f"house-{m}", 1), 50.0)
    gen = files.append_to_journal(now=0.0)
    journal = tmp_path / "csv/.journal"
    assert journal.read_text().count("\n") == 3  # rows only, no headers
    assert all(data_rows(tmp_path / f"csv/house-{m}/2026-11-24.csv") == [] for m in range(3))

    files.sync()
    files.mark_synced(gen)
    assert files.journal_holds_rows  # durable in the journal only: it is kept

    gen = files.write()
    files.sync()
    files.mark_synced(gen)
    assert not files.journal_holds_rows and journal.read_text() == ""
    assert all(len(data_rows(tmp_path / f"csv/house-{m}/2026-11-24.csv")) == 1 for m in range(3))


def test_an_append_after_the_last_write_keeps_the_journal(tmp_path):
    files = new_files(tmp_path)
    files.add(reading("house-a", 1), 0.0)
    files.append_to_journal(now=0.0)
    gen = files.write()
    files.add(reading("house-a", 2), 0.0)
    files.append_to_journal(now=0.0)  # not yet in its day file
    files.sync()
    files.mark_synced(gen)
    assert files.journal_holds_rows


def test_a_journaled_row_is_not_forgotten_with_unacknowledged_ones(tmp_path):
    files = new_files(tmp_path)
    files.add(reading("house-a", 1), 0.0)
    files.append_to_journal(now=0.0)
    files.add(reading("house-a", 2), 0.0)  # not journaled: its message comes back
    files.discard_buffered()
    files.write_and_sync()
    assert len(data_rows(tmp_path / "csv/house-a/2026-11-24.csv")) == 2
    assert not files.journal_holds_rows


def test_replay_writes_what_is_missing_once_and_empties_the_journal(tmp_path):
    files = new_files(tmp_path)
    for minute in (1, 2):
        files.add(reading("house-a", minute, minute), 0.0)
    files.add(reading("house-b", 1, 1), 0.0)
    files.write_and_sync()  # these three are on disk already
    files.add(reading("house-a", 3, 3), 0.0)
    files.add(reading("house-b", 2, 2), 0.0)
    files.append_to_journal(now=0.0)  # two rows only in the journal, then "a crash"
    journal = tmp_path / "csv/.journal"
    on_disk = data_rows(tmp_path / "csv/house-a/2026-11-24.csv")
    with journal.open("a") as f:
        f.write(on_disk[0] + "\n")  # a row the journal holds twice (written already)
        f.write("garbage line\n")
        f.write("2026-11-24T11:09:00,house-a,1.0,0.0,1.0,9\n")  # no UTC offset
        f.write(on_disk[0][:20])  # a torn last line

    again = new_files(tmp_path)
    assert again.replay_journal() == (2, 1)
    again.close()
    a = data_rows(tmp_path / "csv/house-a/2026-11-24.csv")
    b = data_rows(tmp_path / "csv/house-b/2026-11-24.csv")
    assert [row.split(",")[-1] for row in a] == ["1", "2", "3"]
    assert [row.split(",")[-1] for row in b] == ["1", "2"]
    assert journal.read_bytes() == b""
    assert (tmp_path / "csv/house-a/2026-11-24.csv").read_bytes().count(HEADER) == 1


def test_a_failed_append_leaves_the_journal_as_it_was(tmp_path, monkeypatch):
    files = new_files(tmp_path)
    files.add(reading("house-a", 1), 0.0)
    files.append_to_journal(now=0.0)
    size = (tmp_path / "csv/.journal").stat().st_size
    files.add(reading("house-a", 2), 0.0)
    real_write = journal_mod.os.write

    def half_then_full(fd: int, data: bytes) -> int:
        monkeypatch.setattr(journal_mod.os, "write", fail)
        return real_write(fd, bytes(data[:10]))

    def fail(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_mod.os, "write", half_then_full)
    try:
        files.append_to_journal(now=0.0)
    except OSError:
        pass
    else:
        raise AssertionError("the append did not fail")
    assert (tmp_path / "csv/.journal").stat().st_size == size
    monkeypatch.setattr(journal_mod.os, "write", real_write)
    files.append_to_journal(now=0.0)  # the row is still there to append
    assert (tmp_path / "csv/.journal").read_text().count("\n") == 2


# --- when the daemon journals ---------------------------------------------------------------


def daemon(tmp_path: Path, prefetch: int) -> PvSimDaemon:
    d = harness.daemon(tmp_path, prefetch, fsync="batch")
    d.open()  # the output directory, the journal, the sync thread; no broker session:
    return d  # deliveries are handed in below


def deliver(d: PvSimDaemon, tag: int, meter: str, minute: int) -> None:
    harness.deliver(d, tag, reading(meter, minute, tag))


def settle(d: PvSimDaemon) -> None:
    d._settle_syncs()


def test_backlog_commits_journal_and_a_checkpoint_writes_the_day_files(tmp_path):
    d = daemon(tmp_path, prefetch=8)  # a commit every 2 deliveries
    d.sessions.session = recorder = harness.AckRecorder()
    try:
        for tag in range(1, 7):
            deliver(d, tag, f"house-{tag}", 1)
            settle(d)
        assert recorder.acks == [2, 4, 6]  # acknowledged once in the journal
        journal = tmp_path / "csv/.journal"
        assert journal.read_text().count("\n") == 6
        assert data_rows(tmp_path / "csv/house-1/2026-11-24.csv") == []

        d.checkpoint()  # a checkpoint (as the flush interval's, or stopping)
        settle(d)
        assert journal.read_text() == ""
        for tag in range(1, 7):
            assert len(data_rows(tmp_path / f"csv/house-{tag}/2026-11-24.csv")) == 1
    finally:
        d.syncer.stop(5)
        d.files.close()


def test_a_full_journal_makes_the_next_backlog_commit_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_mod, "CHECKPOINT_ROWS", 4)
    d = daemon(tmp_path, prefetch=8)
    d.sessions.session = harness.AckRecorder()
    try:
        for tag in range(1, 7):
            deliver(d, tag, "house-a", tag)
            settle(d)
        # two appends (4 rows), then the third commit writes all six to the day file
        assert len(data_rows(tmp_path / "csv/house-a/2026-11-24.csv")) == 6
        assert (tmp_path / "csv/.journal").read_text() == ""
    finally:
        d.syncer.stop(5)
        d.files.close()


def test_a_checkpoint_is_due_after_five_seconds_or_a_full_journal(tmp_path, monkeypatch):
    j = journal_mod.Journal(str(tmp_path))
    due = j.checkpoints.due
    assert not due(now=1e9)  # empty: nothing owed
    j.append(b"row\n", 1, now=100.0)
    assert not due(now=104.9) and due(now=105.0)
    j.empty()
    assert not due(now=1e9)
    monkeypatch.setattr(journal_mod, "CHECKPOINT_ROWS", 3)
    j.append(b"a\nb\n", 2, now=200.0)
    assert not due(now=200.0)
    j.append(b"c\n", 3, now=200.0)
    assert due(now=200.0)
    j.close()


def test_a_commit_of_the_flush_interval_writes_the_day_files_not_the_journal(tmp_path):
    d = daemon(tmp_path, prefetch=8)  # fewer deliveries than a batch: no backlog
    d.sessions.session = recorder = harness.AckRecorder()
    try:
        deliver(d, 1, "house-a", 1)
        d.checkpoint()  # what the tick does once flush_interval is up
        settle(d)
        assert recorder.acks == [1]
        assert len(data_rows(tmp_path / "csv/house-a/2026-11-24.csv")) == 1
        assert (tmp_path / "csv/.journal").read_bytes() == b""
    finally:
        d.syncer.stop(5)
        d.files.close()


def test_the_journal_may_be_emptied_only_after_a_later_complete_write_is_durable():
    c = journal_mod.Checkpoints()
    c.appended(1, rows=5, now=0.0)
    assert not c.may_empty(1)  # its own sync: the rows are only in the journal
    c.wrote_everything(2)
    assert not c.may_empty(1)  # the write is not yet durable
    assert c.may_empty(2)
    c.appended(3, rows=1, now=0.0)
    assert not c.may_empty(3)  # an append after the write
    c.rolled_back()
    c.wrote_everything(4)
    assert c.may_empty(4)


def test_after_a_failure_the_next_commit_is_a_checkpoint():
    c = journal_mod.Checkpoints()
    assert not c.due(now=0.0)
    c.failed()
    assert c.due(now=0.0)
    c.wrote_everything(1)
    assert not c.due(now=0.0)
