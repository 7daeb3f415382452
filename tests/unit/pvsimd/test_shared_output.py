"""A shared output directory: several pvsimd (shards, standbys) write the same day files,
each under its lock, and a write first catches up with what the others appended — so a
meter whose readings move from one shard to another (the hash ring changed) still gets
one row per reading, in one file per day, with the header once."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pvsim import wire
from pvsimd.day_file import locked
from tests.unit.pvsimd.harness import SiteDayFiles

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 11, 24, 9, tzinfo=UTC)


def reading(i: int, meter: str = "house-a") -> wire.Reading:
    return wire.Reading(meter, T0 + timedelta(seconds=10 * i), 100.0 + i, i)


def seqs(path: Path) -> list[int]:
    return [int(r["seq"]) for r in csv.DictReader(io.StringIO(path.read_text()))]


@pytest.fixture
def pair(tmp_path):
    """Two pvsimd's day files on one directory (fsync off: the order of writes is what
    matters here)."""
    a = SiteDayFiles(tmp_path, BERLIN, fsync="off", shared=True)
    b = SiteDayFiles(tmp_path, BERLIN, fsync="off", shared=True)
    yield a, b
    a.close()
    b.close()


def test_the_same_reading_buffered_by_two_pvsimd_is_written_once(pair, tmp_path):
    a, b = pair
    path = tmp_path / "house-a" / "2026-11-24.csv"
    assert a.add(reading(0), 1.0) and b.add(reading(0), 1.0)  # both think it is new
    a.add(reading(1), 1.0)
    a.write()
    b.add(reading(2), 1.0)
    b.write()  # catches up: reading 0 is there already, only 2 is written
    assert seqs(path) == [0, 1, 2]
    assert path.read_text().count("timestamp,") == 1
    assert (a.late_repeats, b.late_repeats) == (0, 1)
    assert not b.add(reading(1), 1.0)  # b now knows what a wrote


def test_a_meter_moving_between_shards_and_back_gets_every_row_once(pair, tmp_path):
    """The ring changes twice while the old shard still works through its backlog and
    meterd republishes what was unconfirmed: every reading ends in one row."""
    a, b = pair
    for i in range(0, 10):
        a.add(reading(i), 1.0)
    a.write()
    for i in range(8, 20):  # 8, 9: republished after a reconnect, routed to b now
        b.add(reading(i), 1.0)
    for i in range(10, 12):  # a's backlog: the same readings, from its queue
        a.add(reading(i), 1.0)
    b.write()
    a.write()
    for i in range(20, 25):
        a.add(reading(i), 1.0)  # the ring moved the meter back
    a.write()
    assert sorted(seqs(tmp_path / "house-a" / "2026-11-24.csv")) == list(range(25))


def test_a_torn_line_of_a_pvsimd_that_died_mid_write_is_cut_by_the_next_writer(pair, tmp_path):
    a, b = pair
    a.add(reading(0), 1.0)
    a.write()
    path = tmp_path / "house-a" / "2026-11-24.csv"
    with open(path, "a") as fh:  # another writer died in the middle of a row
        fh.write("2026-11-24T10:00:10+01:00,house-a,10")
    b.add(reading(1), 1.0)
    b.write()
    a.add(reading(2), 1.0)
    a.write()
    assert seqs(path) == [0, 1, 2]
    assert path.read_text().endswith("\n")


def test_a_write_waits_for_the_other_writers_lock(pair, tmp_path):
    a, b = pair
    a.add(reading(0), 1.0)
    a.write()
    path = tmp_path / "house-a" / "2026-11-24.csv"
    b.add(reading(1), 1.0)
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another pvsimd is in the middle of a write
    done = threading.Event()
    writer = threading.Thread(target=lambda: (b.write(), done.set()))
    writer.start()
    assert not done.wait(0.3)  # the lock is the fault here: held, nothing written
    os.write(fd, b"2026-11-24T10:00:10+01:00,house-a,101.0,1.0,102.0,1\n")  # theirs
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    writer.join(5)
    assert done.is_set()
    assert seqs(path) == [0, 1]  # b's row 1 was a repeat of theirs
    assert b.late_repeats == 1


def test_a_rollback_after_a_failed_sync_cuts_only_when_nobody_appended_since(pair, tmp_path):
    a, b = pair
    path = tmp_path / "house-a" / "2026-11-24.csv"
    a.add(reading(0), 1.0)
    a.write()
    a.fsync = "batch"  # from here on writes await a sync (the commit log keeps them)
    a.add(reading(1), 1.0)
    a.write()
    b.add(reading(2), 1.0)
    b.write()  # b appends after a's unsynced row
    a.roll_back_unsynced()  # a's sync failed: its row stays, b's row is not cut away
    assert seqs(path) == [0, 1, 2]
    a.write()  # the row a buffered again is there: dropped as a repeat, not doubled
    assert seqs(path) == [0, 1, 2]
    a.fsync = "off"


def test_unshared_day_files_take_no_lock(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(fcntl, "flock", lambda fd, op: calls.append(op))
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    for i in range(3):
        files.add(reading(i), 1.0)
    files.write()
    files.close()
    assert calls == []


def test_locked_releases_on_error(tmp_path):
    path = tmp_path / "f"
    path.write_text("")
    fd = os.open(path, os.O_RDWR)
    with pytest.raises(RuntimeError), locked(fd):
        raise RuntimeError
    other = os.open(path, os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    os.close(other)
    os.close(fd)
