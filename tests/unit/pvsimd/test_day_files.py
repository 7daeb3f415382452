"""CSV day files: one per meter and local day, header once, one row per reading, no torn lines."""

from __future__ import annotations

import csv
import errno
import io
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from pvsim import durable, wire
from pvsimd import csv_format
from pvsimd.csv_format import HEADER
from tests.unit.pvsimd.harness import SiteDayFiles

BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")
ADELAIDE = ZoneInfo("Australia/Adelaide")
HEADER_LINE = "timestamp,meter_id,meter_w,pv_w,sum_w,seq"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def reading(ts: datetime, meter: str = "house-a", power: float = 1234.5, seq: int | None = 1):
    return wire.Reading(meter, ts.astimezone(UTC), power, seq)


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.fixture
def files(tmp_path):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    yield files
    files.close()


def write_all(files: SiteDayFiles, readings, pv_w: float = 100.0) -> list[bool]:
    results = [files.add(r, pv_w) for r in readings]
    files.write_and_sync()
    return results


# --- paths and rows ---------------------------------------------------------------------------


def test_short_writes_are_completed(files, tmp_path, monkeypatch):
    """os.write may write less than asked (a signal, a nearly full quota): the rest
    follows, and the file holds every row once."""
    real_write = os.write
    calls = []

    def short_write(fd, data):
        calls.append(len(data))
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", short_write)
    t0 = utc(2026, 11, 24, 10)
    write_all(files, [reading(t0 + timedelta(seconds=10 * i), seq=i) for i in range(3)])
    monkeypatch.undo()
    assert [r["seq"] for r in rows(tmp_path / "house-a/2026-11-24.csv")] == ["0", "1", "2"]
    assert len(calls) > 10  # the rows did not fit in one call


def test_path_is_directory_meter_local_day(files, tmp_path):
    files.add(reading(utc(2026, 11, 24, 10)), 1.0)
    # 23:30 UTC is already the next day in Berlin
    files.add(reading(utc(2026, 11, 24, 23, 30)), 1.0)
    files.write_and_sync()
    assert sorted(tmp_path.rglob("*.csv")) == [
        tmp_path / "house-a/2026-11-24.csv",
        tmp_path / "house-a/2026-11-25.csv",
    ]


def test_first_write_creates_the_file_with_header_and_row(files, tmp_path):
    assert write_all(files, [reading(utc(2026, 11, 24, 10), seq=42)], pv_w=765.4) == [True]
    assert lines(tmp_path / "house-a/2026-11-24.csv") == [
        HEADER_LINE,
        "2026-11-24T11:00:00+01:00,house-a,1234.5,765.4,1999.9,42",
    ]


def test_header_is_exactly_the_documented_one():
    assert HEADER == b"timestamp,meter_id,meter_w,pv_w,sum_w,seq\n"


def test_row_without_seq_has_empty_seq_column(files, tmp_path):
    write_all(files, [reading(utc(2026, 11, 24, 10), seq=None)])
    assert lines(tmp_path / "house-a/2026-11-24.csv")[1].endswith(",1334.5,")


def test_sum_is_meter_plus_pv_as_written(files, tmp_path):
    powers = [0.0, 0.1, 0.2, 1234.5, 8999.9, 9000.0, 333.3, 0.05, 1e-9]
    pvs = [0.0, 0.2, 0.1, 3300.0, 0.1, 4000.0, 666.7, 0.15, 2.25]
    for k, (p, pv) in enumerate(zip(powers, pvs, strict=True)):
        files.add(reading(utc(2026, 11, 24, 10) + timedelta(seconds=k), power=p), pv)
    files.write_and_sync()
    got = rows(tmp_path / "house-a/2026-11-24.csv")
    assert len(got) == len(powers)
    for row in got:
        assert Decimal(row["sum_w"]) == Decimal(row["meter_w"]) + Decimal(row["pv_w"])
        assert len(row["meter_w"].split(".")[1]) == 1  # one decimal, as written


def test_written_rows_are_exactly_format_row(files, tmp_path):
    # the rows as the CSV format writes them (its own tests say how that is)
    cases = [
        (reading(utc(2026, 11, 24, 10), power=0.0, seq=None), 0.0),
        (reading(utc(2026, 11, 24, 10, 0, 1, 20_000), power=0.05, seq=0), 0.15),
        (reading(utc(2026, 11, 24, 10, 0, 2, 123_456), power=8999.96, seq=2**63 - 1), 3999.95),
        (reading(utc(2026, 11, 24, 10, 0, 3), power=1e-9, seq=7), 2.25),
    ]
    write_all(files, [r for r, _ in cases[:1]], pv_w=cases[0][1])
    for r, pv in cases[1:]:
        files.add(r, pv)
    files.write_and_sync()
    written = (tmp_path / "house-a/2026-11-24.csv").read_bytes().splitlines(keepends=True)[1:]
    assert written == [
        csv_format.format_row(
            csv_format.format_local_ts(r.ts, BERLIN), r.meter_id, r.power_w, pv, r.seq
        ).encode()
        for r, pv in cases
    ]


def test_timestamp_keeps_milliseconds(files, tmp_path):
    write_all(files, [reading(utc(2026, 11, 24, 10, 0, 0, 20_000))])
    assert lines(tmp_path / "house-a/2026-11-24.csv")[1].startswith(
        "2026-11-24T11:00:00.020+01:00,"
    )


def test_summer_rows_carry_the_summer_offset(files, tmp_path):
    write_all(files, [reading(utc(2026, 7, 1, 10))])
    assert lines(tmp_path / "house-a/2026-07-01.csv")[1].startswith("2026-07-01T12:00:00+02:00,")


def test_meters_get_their_own_folders(files, tmp_path):
    write_all(files, [reading(utc(2026, 11, 24, 10), meter=m) for m in ("house-a", "house-b")])
    assert (tmp_path / "house-a/2026-11-24.csv").exists()
    assert rows(tmp_path / "house-b/2026-11-24.csv")[0]["meter_id"] == "house-b"


# --- the header exactly once -----------------------------------------------------------------


def test_header_once_across_flushes(files, tmp_path):
    write_all(files, [reading(utc(2026, 11, 24, 10))])
    write_all(files, [reading(utc(2026, 11, 24, 10, 0, 10))])
    got = lines(tmp_path / "house-a/2026-11-24.csv")
    assert got.count(HEADER_LINE) == 1 and len(got) == 3


def test_header_once_after_restart(tmp_path):
    first = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(first, [reading(utc(2026, 11, 24, 10))])
    first.close()
    second = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(second, [reading(utc(2026, 11, 24, 10, 0, 10))])
    second.close()
    got = lines(tmp_path / "house-a/2026-11-24.csv")
    assert got[0] == HEADER_LINE
    assert got.count(HEADER_LINE) == 1 and len(got) == 3


def test_empty_existing_file_gets_a_header(tmp_path):
    path = tmp_path / "house-a/2026-11-24.csv"
    path.parent.mkdir()
    path.write_bytes(b"")
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(files, [reading(utc(2026, 11, 24, 10))])
    files.close()
    assert lines(path)[0] == HEADER_LINE and len(lines(path)) == 2


# --- one row per reading ---------------------------------------------------------------------


def test_duplicate_reading_is_not_written_twice(files, tmp_path):
    r = reading(utc(2026, 11, 24, 10))
    assert files.add(r, 10.0) is True
    assert files.add(r, 10.0) is False  # still buffered
    files.write_and_sync()
    assert files.add(r, 10.0) is False  # already on disk
    files.write_and_sync()
    assert len(rows(tmp_path / "house-a/2026-11-24.csv")) == 1


def test_duplicate_is_by_meter_and_time_not_by_seq_or_power(files, tmp_path):
    files.add(reading(utc(2026, 11, 24, 10), power=1.0, seq=1), 10.0)
    assert files.add(reading(utc(2026, 11, 24, 10), power=2.0, seq=99), 10.0) is False
    assert files.add(reading(utc(2026, 11, 24, 10), meter="house-b"), 10.0) is True


def test_same_instant_written_with_another_offset_is_a_duplicate(files):
    files.add(reading(utc(2026, 11, 24, 10)), 10.0)
    same = wire.decode(b'{"v":1,"meter_id":"house-a","ts":"2026-11-24T11:00:00+01:00","power_w":5}')
    assert files.add(same, 10.0) is False


def test_duplicate_after_restart_is_not_written(tmp_path):
    first = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(first, [reading(utc(2026, 11, 24, 10, 0, s)) for s in (0, 10, 20)])
    first.close()
    second = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    assert second.add(reading(utc(2026, 11, 24, 10, 0, 20)), 1.0) is False  # the newest
    assert second.add(reading(utc(2026, 11, 24, 10, 0, 0)), 1.0) is False  # an older one
    assert second.add(reading(utc(2026, 11, 24, 10, 0, 30)), 1.0) is True
    second.close()
    assert len(rows(tmp_path / "house-a/2026-11-24.csv")) == 4


def test_duplicate_arriving_out_of_order_is_not_written(files, tmp_path):
    times = [utc(2026, 11, 24, 10, 0, s) for s in (0, 10, 20, 30)]
    write_all(files, [reading(t) for t in times])
    assert files.add(reading(times[1]), 1.0) is False  # older than the newest, and known
    assert files.add(reading(utc(2026, 11, 24, 10, 0, 15)), 1.0) is True  # older, but new
    assert files.add(reading(utc(2026, 11, 24, 10, 0, 15)), 1.0) is False
    files.write_and_sync()
    got = [row["timestamp"] for row in rows(tmp_path / "house-a/2026-11-24.csv")]
    assert len(got) == 5 and len(set(got)) == 5


def test_duplicate_out_of_order_after_restart_is_not_written(tmp_path):
    first = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(first, [reading(utc(2026, 11, 24, 10, 0, s)) for s in (0, 10, 20)])
    first.close()
    second = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(second, [reading(utc(2026, 11, 24, 10, 0, 30))])
    assert second.add(reading(utc(2026, 11, 24, 10, 0, 10)), 1.0) is False
    second.close()
    assert len(rows(tmp_path / "house-a/2026-11-24.csv")) == 4


# --- crashes and failures --------------------------------------------------------------------


def test_torn_last_line_is_cut_off_on_reopen(tmp_path, caplog):
    first = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(first, [reading(utc(2026, 11, 24, 10, 0, s)) for s in (0, 10)])
    first.close()
    path = tmp_path / "house-a/2026-11-24.csv"
    complete = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(b"2026-11-24T11:00:20+01:00,house-a,12")  # a crash mid-row

    second = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    assert second.add(reading(utc(2026, 11, 24, 10, 0, 20)), 100.0) is True
    second.write_and_sync()
    second.close()
    assert path.read_bytes().startswith(complete)
    got = lines(path)
    assert len(got) == 4
    assert got[3] == "2026-11-24T11:00:20+01:00,house-a,1234.5,100.0,1334.5,1"
    assert "torn" in caplog.text


def test_torn_header_is_replaced_by_a_whole_one(tmp_path):
    path = tmp_path / "house-a/2026-11-24.csv"
    path.parent.mkdir()
    path.write_bytes(b"timestamp,meter")
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(files, [reading(utc(2026, 11, 24, 10))])
    files.close()
    assert lines(path)[0] == HEADER_LINE and len(lines(path)) == 2


def test_repeat_of_the_torn_row_is_written_once_after_reopen(tmp_path):
    first = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(first, [reading(utc(2026, 11, 24, 10))])
    first.close()
    path = tmp_path / "house-a/2026-11-24.csv"
    with open(path, "ab") as fh:
        fh.write(b"2026-11-24T11:00:10+01:00,house-a,1234.5,100.0,1334.5")  # no newline

    second = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    assert second.add(reading(utc(2026, 11, 24, 10, 0, 10)), 100.0) is True
    second.close()
    assert [row["timestamp"] for row in rows(path)] == [
        "2026-11-24T11:00:00+01:00",
        "2026-11-24T11:00:10+01:00",
    ]


def test_failed_flush_leaves_only_complete_lines_and_raises(tmp_path, monkeypatch):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(files, [reading(utc(2026, 11, 24, 10))])
    path = tmp_path / "house-a/2026-11-24.csv"
    before = path.read_bytes()

    for s in (10, 20, 30):
        files.add(reading(utc(2026, 11, 24, 10, 0, s)), 1.0)
    real_write = os.write
    calls = []

    def write(fd, data):
        calls.append(1)
        if len(calls) == 1:
            return real_write(fd, bytes(data)[: len(data) // 2])  # half a batch...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(OSError) as info:
        files.write_and_sync()
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before  # rolled back to the last complete row
    with pytest.raises(OSError):
        files.write_and_sync()  # still full: still nothing half-written
    assert path.read_bytes() == before

    monkeypatch.undo()  # space again: the buffered rows are written by the next flush
    files.write_and_sync()
    got = lines(path)
    assert got[0] == HEADER_LINE and got.count(HEADER_LINE) == 1
    assert [line[:25] for line in got[1:]] == [
        "2026-11-24T11:00:00+01:00",
        "2026-11-24T11:00:10+01:00",
        "2026-11-24T11:00:20+01:00",
        "2026-11-24T11:00:30+01:00",
    ]
    # a redelivery of a reading held during the failure is still one row
    assert files.add(reading(utc(2026, 11, 24, 10, 0, 20)), 1.0) is False
    files.close()
    assert len(lines(path)) == 5


def test_failed_flush_of_a_new_file_leaves_no_half_header(tmp_path, monkeypatch):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    files.add(reading(utc(2026, 11, 24, 10)), 1.0)
    real_write = os.write

    def write(fd, data):
        real_write(fd, bytes(data)[:20])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(OSError):
        files.write_and_sync()
    monkeypatch.undo()
    path = tmp_path / "house-a/2026-11-24.csv"
    assert path.read_bytes() == b""
    files.close()
    assert lines(path) == [HEADER_LINE, "2026-11-24T11:00:00+01:00,house-a,1234.5,1.0,1235.5,1"]


def test_failed_flush_of_one_file_still_writes_the_others(tmp_path, monkeypatch):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(files, [reading(utc(2026, 11, 24, 10), meter=m) for m in ("house-a", "house-b")])
    files.add(reading(utc(2026, 11, 24, 10, 0, 10), meter="house-a"), 1.0)
    files.add(reading(utc(2026, 11, 24, 10, 0, 10), meter="house-b"), 1.0)
    real_write = os.write
    calls = []

    def write(fd, data):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(OSError):
        files.write_and_sync()
    counts = sorted(len(rows(tmp_path / m / "2026-11-24.csv")) for m in ("house-a", "house-b"))
    assert counts == [1, 2]  # one file failed, the other got its row
    files.write_and_sync()
    files.close()
    for meter in ("house-a", "house-b"):
        assert len(rows(tmp_path / meter / "2026-11-24.csv")) == 2


def test_discard_buffered_forgets_buffered_rows(files, tmp_path):
    write_all(files, [reading(utc(2026, 11, 24, 10))])
    files.add(reading(utc(2026, 11, 24, 10, 0, 10)), 1.0)
    files.discard_buffered()
    files.write_and_sync()
    assert len(rows(tmp_path / "house-a/2026-11-24.csv")) == 1
    assert files.add(reading(utc(2026, 11, 24, 10, 0, 10)), 1.0) is True  # not a repeat


# --- open files ------------------------------------------------------------------------------


def test_max_open_2_with_3_meters_writes_every_row(tmp_path):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off", max_open=2)
    meters = ["house-a", "house-b", "house-c"]
    for k in range(30):
        for meter in meters:
            assert files.add(reading(utc(2026, 11, 24, 10, 0, k), meter=meter, seq=k), 1.0)
            files.write_and_sync()  # as the consumer does between deliveries
            assert files.open_count <= 2
    # repeats are still recognised after their file was closed and reopened
    for meter in meters:
        assert files.add(reading(utc(2026, 11, 24, 10, 0, 5), meter=meter), 1.0) is False
    files.close()
    for meter in meters:
        path = tmp_path / meter / "2026-11-24.csv"
        assert [int(row["seq"]) for row in rows(path)] == list(range(30))
        assert lines(path).count(HEADER_LINE) == 1


def open_csv_descriptors(directory: Path) -> int:
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(directory)) and target.endswith(".csv"):
            count += 1
    return count


def test_open_descriptors_never_exceed_max_open_even_with_buffered_rows(tmp_path):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off", max_open=2)
    meters = [f"house-{c}" for c in "abcde"]
    for s in (0, 10, 20):
        for meter in meters:
            assert files.add(reading(utc(2026, 11, 24, 10, 0, s), meter=meter, seq=s), 1.0)
            assert files.open_count <= 2
            assert open_csv_descriptors(tmp_path) <= 2
    files.write_and_sync()
    assert open_csv_descriptors(tmp_path) <= 2
    files.close()
    assert open_csv_descriptors(tmp_path) == 0
    for meter in meters:
        assert [row["seq"] for row in rows(tmp_path / meter / "2026-11-24.csv")] == [
            "0",
            "10",
            "20",
        ]


def test_file_removed_while_closed_is_recreated_with_its_header(tmp_path, caplog):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off", max_open=1)
    write_all(files, [reading(utc(2026, 11, 24, 10))])
    write_all(files, [reading(utc(2026, 11, 24, 10), meter="house-b")])  # closes house-a's
    path = tmp_path / "house-a/2026-11-24.csv"
    path.unlink()  # an operator cleaning up
    write_all(files, [reading(utc(2026, 11, 24, 10, 0, 10))])
    files.close()
    assert lines(path) == [HEADER_LINE, "2026-11-24T11:00:10+01:00,house-a,1234.5,100.0,1334.5,1"]
    assert "changed outside pvsimd" in caplog.text


def test_forgotten_file_state_is_read_again_from_disk(tmp_path):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off", max_open=1)
    files.max_known = 2
    for meter in ("house-a", "house-b", "house-c"):  # house-a's state is dropped
        write_all(files, [reading(utc(2026, 11, 24, 10, 0, 10), meter=meter)])
    assert files.add(reading(utc(2026, 11, 24, 10, 0, 10)), 1.0) is False
    assert files.add(reading(utc(2026, 11, 24, 10, 0, 0)), 1.0) is True
    files.close()
    assert len(rows(tmp_path / "house-a/2026-11-24.csv")) == 2


def test_close_flushes_buffered_rows(tmp_path):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    files.add(reading(utc(2026, 11, 24, 10)), 1.0)
    files.close()
    assert len(rows(tmp_path / "house-a/2026-11-24.csv")) == 1


def test_fsync_batch_writes_the_same_rows(tmp_path):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="batch")
    assert files.fsync == "batch"  # one syncfs per flush (this machine's libc has it)
    write_all(files, [reading(utc(2026, 11, 24, 10), meter=m) for m in ("house-a", "house-b")])
    files.close()
    for meter in ("house-a", "house-b"):
        assert len(rows(tmp_path / meter / "2026-11-24.csv")) == 1


def test_syncfs_is_real_and_reports_errors(tmp_path):
    assert durable.syncfs_available()
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        durable.syncfs(fd)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as info:
        durable.syncfs(fd)  # closed
    assert info.value.errno == errno.EBADF


def test_failed_syncfs_rolls_back_the_whole_flush(tmp_path, monkeypatch):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="batch", max_open=1)
    meters = ("house-a", "house-b", "house-c")
    write_all(files, [reading(utc(2026, 11, 24, 10), meter=m) for m in meters])
    before = {m: (tmp_path / m / "2026-11-24.csv").read_bytes() for m in meters}
    for m in meters:
        files.add(reading(utc(2026, 11, 24, 10, 0, 10), meter=m), 1.0)

    def syncfs(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(durable, "syncfs", syncfs)
    with pytest.raises(OSError) as info:
        files.write_and_sync()
    assert info.value.errno == errno.EIO
    assert {m: (tmp_path / m / "2026-11-24.csv").read_bytes() for m in meters} == before
    monkeypatch.undo()
    files.write_and_sync()  # the rows were kept: written now, once
    assert files.add(reading(utc(2026, 11, 24, 10, 0, 10)), 1.0) is False
    files.close()
    for m in meters:
        assert [r["timestamp"][11:19] for r in rows(tmp_path / m / "2026-11-24.csv")] == [
            "11:00:00",
            "11:00:10",
        ]


def test_fsync_file_syncs_each_file_and_each_new_directory_entry(tmp_path, monkeypatch):
    synced_dirs = []
    real = durable.fsync_directory
    monkeypatch.setattr(
        durable, "fsync_directory", lambda p: (synced_dirs.append(str(p)), real(p))
    )
    fsynced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsynced.append(fd), real_fsync(fd)))
    files = SiteDayFiles(tmp_path, BERLIN, fsync="file")
    write_all(files, [reading(utc(2026, 11, 24, 10))])
    assert sorted(synced_dirs) == [str(tmp_path), str(tmp_path / "house-a")]
    assert len(fsynced) == 3  # the file and the two directories
    synced_dirs.clear()
    write_all(files, [reading(utc(2026, 11, 24, 10, 0, 10))])  # an existing file: no dirs
    assert synced_dirs == [] and len(fsynced) == 4
    files.close()
    assert len(rows(tmp_path / "house-a/2026-11-24.csv")) == 2


def test_failed_fsync_of_a_file_rolls_it_back_and_keeps_its_rows(tmp_path, monkeypatch):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="file")
    write_all(files, [reading(utc(2026, 11, 24, 10))])
    path = tmp_path / "house-a/2026-11-24.csv"
    before = path.read_bytes()
    files.add(reading(utc(2026, 11, 24, 10, 0, 10)), 1.0)

    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError):
        files.write_and_sync()
    assert path.read_bytes() == before
    monkeypatch.undo()
    files.write_and_sync()
    files.close()
    assert len(rows(path)) == 2


def test_unknown_fsync_mode_is_refused(tmp_path):
    with pytest.raises(ValueError):
        SiteDayFiles(tmp_path, BERLIN, fsync="sometimes")


# --- which day: local midnight, daylight saving time, half-hour zones -----------------------


def every_10s(start: datetime, end: datetime):
    t = start
    while t < end:
        yield reading(t, seq=None)
        t += timedelta(seconds=10)


def test_local_midnight_splits_the_files(files, tmp_path):
    write_all(files, every_10s(utc(2026, 11, 24, 22, 59, 50), utc(2026, 11, 24, 23, 0, 10)))
    assert lines(tmp_path / "house-a/2026-11-24.csv")[1:] == [
        "2026-11-24T23:59:50+01:00,house-a,1234.5,100.0,1334.5,"
    ]
    assert [row["timestamp"] for row in rows(tmp_path / "house-a/2026-11-25.csv")] == [
        "2026-11-25T00:00:00+01:00"
    ]


def test_reading_before_midnight_arriving_after_midnight_goes_to_its_day(tmp_path):
    files = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    with freeze_time("2026-11-24T23:00:20Z"):  # 00:00:20 local: the next day already
        write_all(files, [reading(datetime(2026, 11, 24, 23, 59, 55, tzinfo=BERLIN))])
        files.close()
    assert [row["timestamp"] for row in rows(tmp_path / "house-a/2026-11-24.csv")] == [
        "2026-11-24T23:59:55+01:00"
    ]
    assert not (tmp_path / "house-a/2026-11-25.csv").exists()


def test_spring_forward_day_holds_23_hours(files, tmp_path):
    # 2026-03-29 in Berlin: 02:00 CET becomes 03:00 CEST
    write_all(files, every_10s(utc(2026, 3, 28, 22), utc(2026, 3, 29, 23)))
    got = [row["timestamp"] for row in rows(tmp_path / "house-a/2026-03-29.csv")]
    assert len(got) == 23 * 360 == 8280
    assert got[0] == "2026-03-29T00:00:00+01:00"
    assert "2026-03-29T01:59:50+01:00" in got
    assert "2026-03-29T03:00:00+02:00" in got
    assert not any(ts.startswith("2026-03-29T02:") for ts in got)
    assert got[-1] == "2026-03-29T23:59:50+02:00"
    assert len(rows(tmp_path / "house-a/2026-03-28.csv")) == 360  # 23:00-24:00 CET
    assert len(rows(tmp_path / "house-a/2026-03-30.csv")) == 360  # 00:00-01:00 CEST


def test_fall_back_day_holds_25_hours(files, tmp_path):
    # 2026-10-25 in Berlin: 03:00 CEST becomes 02:00 CET; 02:xx happens twice
    write_all(files, every_10s(utc(2026, 10, 24, 21), utc(2026, 10, 25, 23, 30)))
    got = [row["timestamp"] for row in rows(tmp_path / "house-a/2026-10-25.csv")]
    assert len(got) == 25 * 360 == 9000
    assert len(set(got)) == 9000
    assert got[0] == "2026-10-25T00:00:00+02:00"
    assert got.index("2026-10-25T02:00:00+02:00") < got.index("2026-10-25T02:00:00+01:00")
    assert "2026-10-25T02:59:50+02:00" in got and "2026-10-25T02:59:50+01:00" in got
    assert got[-1] == "2026-10-25T23:59:50+01:00"


def test_fall_back_repeat_hour_is_not_taken_for_duplicates_after_restart(tmp_path):
    first = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(first, every_10s(utc(2026, 10, 25, 0), utc(2026, 10, 25, 1)))  # 02:xx CEST
    first.close()
    second = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    results = write_all(second, every_10s(utc(2026, 10, 25, 1), utc(2026, 10, 25, 2)))  # CET
    second.close()
    assert all(results)
    assert len(rows(tmp_path / "house-a/2026-10-25.csv")) == 720


@pytest.mark.parametrize(
    ("tz", "ts", "day", "local"),
    [
        (KOLKATA, utc(2026, 11, 24, 18, 29, 50), "2026-11-24", "2026-11-24T23:59:50+05:30"),
        (KOLKATA, utc(2026, 11, 24, 18, 30), "2026-11-25", "2026-11-25T00:00:00+05:30"),
        (KOLKATA, utc(2026, 11, 24, 0, 0), "2026-11-24", "2026-11-24T05:30:00+05:30"),
        # Adelaide: +10:30 in the southern summer, +09:30 in winter
        (ADELAIDE, utc(2026, 11, 24, 13, 29, 50), "2026-11-24", "2026-11-24T23:59:50+10:30"),
        (ADELAIDE, utc(2026, 11, 24, 13, 30), "2026-11-25", "2026-11-25T00:00:00+10:30"),
        (ADELAIDE, utc(2026, 6, 24, 14, 29, 50), "2026-06-24", "2026-06-24T23:59:50+09:30"),
        (ADELAIDE, utc(2026, 6, 24, 14, 30), "2026-06-25", "2026-06-25T00:00:00+09:30"),
        (BERLIN, utc(2026, 3, 29, 0, 59, 50), "2026-03-29", "2026-03-29T01:59:50+01:00"),
        (BERLIN, utc(2026, 3, 29, 1), "2026-03-29", "2026-03-29T03:00:00+02:00"),
        (BERLIN, utc(2026, 10, 25, 0, 30), "2026-10-25", "2026-10-25T02:30:00+02:00"),
        (BERLIN, utc(2026, 10, 25, 1, 30), "2026-10-25", "2026-10-25T02:30:00+01:00"),
    ],
)
def test_file_and_offset_in_zones(tmp_path, tz, ts, day, local):
    files = SiteDayFiles(tmp_path, tz, fsync="off")
    write_all(files, [reading(ts)])
    files.close()
    assert [p.name for p in (tmp_path / "house-a").iterdir()] == [f"{day}.csv"]
    assert rows(tmp_path / "house-a" / f"{day}.csv")[0]["timestamp"] == local


def test_adelaide_dst_end_day_holds_25_hours(tmp_path):
    # 2026-04-05 in Adelaide: 03:00 +10:30 becomes 02:00 +09:30
    files = SiteDayFiles(tmp_path, ADELAIDE, fsync="off")
    write_all(files, every_10s(utc(2026, 4, 4, 13), utc(2026, 4, 5, 15)))
    files.close()
    got = [row["timestamp"] for row in rows(tmp_path / "house-a/2026-04-05.csv")]
    assert len(got) == 9000
    assert got[0] == "2026-04-05T00:00:00+10:30"
    assert got[-1] == "2026-04-05T23:59:50+09:30"


def test_utc_site_writes_z_offset_as_plus_zero(tmp_path):
    files = SiteDayFiles(tmp_path, ZoneInfo("UTC"), fsync="off")
    write_all(files, [reading(utc(2026, 11, 24, 23, 59, 50))])
    files.close()
    assert rows(tmp_path / "house-a/2026-11-24.csv")[0]["timestamp"] == (
        "2026-11-24T23:59:50+00:00"
    )


def test_repeat_after_reopen_of_a_file_with_an_out_of_order_last_row_is_not_written(tmp_path):
    first = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(first, [reading(utc(2026, 11, 24, 10, 0, s)) for s in (0, 10, 20, 30, 15)])
    first.close()
    second = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    assert second.add(reading(utc(2026, 11, 24, 10, 0, 30)), 1.0) is False
    second.close()
    assert len(rows(tmp_path / "house-a/2026-11-24.csv")) == 5


# --- the newest timestamp of a file opened again ----------------------------------------------


def test_newest_row_is_found_across_the_autumn_clock_change(tmp_path):
    # 00:30 UTC is 02:30+02:00, 01:10 UTC is 02:10+01:00: the later time has the smaller text
    first = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(first, [reading(utc(2026, 10, 25, 0, 30)), reading(utc(2026, 10, 25, 1, 10))])
    first.close()
    second = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    assert second.add(reading(utc(2026, 10, 25, 1, 10)), 1.0) is False  # a repeat
    assert second.add(reading(utc(2026, 10, 25, 0, 40)), 1.0) is True  # older, but new
    second.close()
    assert len(rows(tmp_path / "house-a/2026-10-25.csv")) == 3


def test_newest_row_in_a_long_out_of_order_file_is_found(tmp_path):
    first = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    times = [utc(2026, 11, 24, 10) + timedelta(seconds=10 * k) for k in range(500)]
    newest = times.pop(250)
    write_all(first, [reading(t) for t in times[:100]])
    write_all(first, [reading(newest)])  # arrives early
    write_all(first, [reading(t) for t in times[100:]])
    first.close()
    second = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    assert second.add(reading(newest), 1.0) is False
    assert second.add(reading(newest + timedelta(seconds=1)), 1.0) is True
    second.close()


def test_a_damaged_row_does_not_hide_the_newest(tmp_path):
    first = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    write_all(first, [reading(utc(2026, 11, 24, 10, 0, s)) for s in (0, 10, 20)])
    first.close()
    path = tmp_path / "house-a/2026-11-24.csv"
    with open(path, "ab") as fh:
        fh.write(b"zz-not-a-time,house-a,1,1,2,9\n")  # sorts after every real row
    second = SiteDayFiles(tmp_path, BERLIN, fsync="off")
    assert second.add(reading(utc(2026, 11, 24, 10, 0, 20)), 1.0) is False
    second.close()
