"""Shards: a pvsimd claims its shard (the journal's directory) at the first delivery the
broker gives it, holds deliveries while another one still has the claim, lets go when
its session ends, and a standby taking over writes the rows the previous active one
left in the journal — each reading once."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pvsim import wire
from pvsim.dirlock import DirectoryInUse
from pvsim.reconnect import ConnectionLost
from pvsimd.service import PvSimDaemon
from tests.unit.pvsimd import harness

T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)
SHARD = "shards = 2\nshard = 1\n"


def reading(meter: str, i: int) -> wire.Reading:
    return wire.Reading(meter, T0 + timedelta(seconds=10 * i), 500.0 + i, i)


def pvsimd(tmp_path: Path, name: str) -> PvSimDaemon:
    d = harness.daemon(tmp_path, prefetch=8, fsync="batch", broker=SHARD, name=name)
    d.open()
    d.sessions.session = harness.AckRecorder()
    return d


def settle(d: PvSimDaemon) -> None:
    d._settle_syncs()


def seqs(tmp_path: Path, meter: str) -> list[int]:
    path = tmp_path / "csv" / meter / "2026-11-24.csv"
    return [int(line.rsplit(",", 1)[1]) for line in path.read_text().splitlines()[1:]]


def stop(d: PvSimDaemon) -> None:
    d.syncer.stop(5)
    d.close()


def test_a_standby_takes_over_the_journal_of_an_active_pvsimd_that_died(tmp_path):
    a = pvsimd(tmp_path, "a")
    b = pvsimd(tmp_path, "b")
    try:
        assert b._role() == "standby for pvsimd.readings.1 (shard 1 of 2)"
        for tag in range(1, 7):  # a backlog: commits every 2 deliveries, to the journal
            harness.deliver(a, tag, reading(f"house-{tag % 3}", tag))
            settle(a)
        assert a.claim.held and a.sessions.session.acks == [2, 4, 6]
        journal = a.claim.directory / ".journal"
        assert journal.read_text().count("\n") == 6  # acknowledged, only in the journal
        assert a._role() == "consuming pvsimd.readings.1 (shard 1 of 2, active)"
        active = f"pvsimd {os.getpid()} is active"
        assert b._role() == f"standby for pvsimd.readings.1 (shard 1 of 2; {active})"
        # a dies (SIGKILL): its claim is freed, its buffered rows are gone
        a.claim.release()
        a.syncer.stop(5)
        # the broker delivers to b now: 7 and 8 are new (1-6 were acknowledged)
        harness.deliver(b, 1, reading("house-1", 7))
        harness.deliver(b, 2, reading("house-2", 8))
        settle(b)
        assert b.claim.held and b.sessions.session.acks == [2]
        b.checkpoint()
        settle(b)
        assert seqs(tmp_path, "house-0") == [3, 6]
        assert seqs(tmp_path, "house-1") == [1, 4, 7]
        assert seqs(tmp_path, "house-2") == [2, 5, 8]
        assert journal.read_text() == ""
    finally:
        stop(b)


def test_deliveries_wait_while_the_active_one_still_holds_the_claim(tmp_path):
    a = pvsimd(tmp_path, "a")
    b = pvsimd(tmp_path, "b")
    try:
        harness.deliver(a, 1, reading("house-a", 1))
        a.checkpoint()
        settle(a)  # written; its acknowledgement will be lost with a's connection
        # the broker thinks a is gone (its connection died) and delivers to b, while a
        # has not noticed yet: b holds the deliveries
        harness.deliver(b, 1, reading("house-a", 1))
        harness.deliver(b, 2, reading("house-a", 2))
        assert not b.claim.held and len(b.record.held) == 2
        assert b._role().startswith("taking over pvsimd.readings.1 (shard 1 of 2; pvsimd")
        b._tick()
        assert not b.claim.held  # still a's
        # a notices: its session ends, it writes what it has and lets go
        a.on_session_lost(ConnectionLost("gone"))
        assert not a.claim.held
        assert a._role().startswith("standby for pvsimd.readings.1")
        b._tick()  # b claims and processes the held deliveries
        assert b.claim.held and not b.record.held
        b.checkpoint()
        settle(b)
        assert seqs(tmp_path, "house-a") == [1, 2]  # 1 written by a, a repeat for b
        assert b.stats.duplicates == 1
    finally:
        stop(a)
        stop(b)


def test_at_start_rows_left_in_an_unclaimed_journal_reach_their_day_files(tmp_path):
    a = pvsimd(tmp_path, "a")
    for tag in range(1, 3):
        harness.deliver(a, tag, reading("house-a", tag))
        settle(a)
    assert (a.claim.directory / ".journal").read_text().count("\n") == 2
    a.claim.release()  # a dies with rows only in the journal
    a.syncer.stop(5)
    again = pvsimd(tmp_path, "again")  # open() replays them and lets go
    try:
        assert seqs(tmp_path, "house-a") == [1, 2]
        assert not again.claim.held
        assert (again.claim.directory / ".journal").read_text() == ""
    finally:
        stop(again)


def test_shards_share_the_output_directory_but_keep_an_unsharded_pvsimd_out(tmp_path):
    a = pvsimd(tmp_path, "a")
    b = pvsimd(tmp_path, "b")  # a standby of the same shard starts (no exit 75)
    plain = harness.daemon(tmp_path, prefetch=8, fsync="batch", name="plain")
    try:
        with pytest.raises(DirectoryInUse):
            plain.open()  # exit 75: it would write without the shards' locks
    finally:
        stop(a)
        stop(b)
    plain.open()  # the shards are gone
    try:
        with pytest.raises(DirectoryInUse):
            pvsimd(tmp_path, "late")
    finally:
        plain.close()


def test_a_journal_that_cannot_be_emptied_keeps_the_claim_and_is_retried(tmp_path, monkeypatch):
    a = pvsimd(tmp_path, "a")
    try:
        for tag in range(1, 3):
            harness.deliver(a, tag, reading("house-a", tag))
            settle(a)
        assert a.files.journal_holds_rows
        real_empty = type(a.files.journal).empty

        def failing_empty(journal):
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(type(a.files.journal), "empty", failing_empty)
        a.on_session_lost(ConnectionLost("gone"))  # writes the rows, cannot empty the journal
        assert a.claim.held and a.record.storage is not None  # kept: retried every second
        monkeypatch.setattr(type(a.files.journal), "empty", real_empty)
        a.record.storage.retry_at = 0.0
        a._tick()
        assert not a.claim.held and a.record.storage is None
        assert seqs(tmp_path, "house-a") == [1, 2]
    finally:
        stop(a)
