"""The CSV format: one module formats and parses rows, and a column added there flows
through the day files, the journal's replay and the report — rows acknowledged before
the upgrade and still in the journal reach their day files after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from pvsim import wire
from pvsimd import csv_format, report
from tests.unit.pvsimd.harness import SiteDayFiles

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_header_and_row_as_documented():
    assert csv_format.HEADER_TEXT == "timestamp,meter_id,meter_w,pv_w,sum_w,seq\n"
    local = csv_format.format_local_ts(T0, BERLIN)
    assert local == "2026-11-24T11:00:00+01:00"
    row = csv_format.format_row(local, "house-a", 1234.55, 765.44, 42)
    assert row == "2026-11-24T11:00:00+01:00,house-a,1234.6,765.4,2000.0,42\n"
    assert csv_format.format_row(local, "house-a", 0.0, 0.0, None).endswith(",0.0,0.0,0.0,\n")


def test_parse_gives_back_what_format_wrote():
    local = csv_format.format_local_ts(T0 + timedelta(milliseconds=20), BERLIN)
    row = csv_format.parse_row(csv_format.format_row(local, "house-a", 1.25, 3999.95, 7))
    assert row.ts == T0 + timedelta(milliseconds=20)
    assert row.ts.utcoffset() == timedelta(hours=1)
    assert (row.meter_id, row.meter_w, row.pv_w, row.sum_w, row.seq) == (
        "house-a", 1.2, 4000.0, 4001.2, 7
    )  # fmt: skip
    assert csv_format.parse_row(f"{local},house-a,1.0,2.0,3.0,\n").seq is None


@pytest.mark.parametrize(
    "line",
    [
        "garbage",
        "2026-11-24T11:00:00,house-a,1.0,0.0,1.0,9",  # no UTC offset
        "2026-11-24T11:00:00+01:00,../etc,1.0,0.0,1.0,9",  # not a meter id
        "2026-11-24T11:00:00+01:00,house-a,one,0.0,1.0,9",
        "2026-11-24T11:00:00+01:00,house-a,1.0",  # columns of version 1 missing
    ],
)
def test_a_line_that_is_not_a_row_is_refused(line):
    with pytest.raises(ValueError):
        csv_format.parse_row(line)


def test_columns_after_the_known_ones_are_kept_aside():
    row = csv_format.parse_row("2026-11-24T11:00:00+01:00,house-a,1.0,2.0,3.0,4,0.93,x\n")
    assert (row.seq, row.extra) == (4, {"#6": "0.93", "#7": "x"})
    assert csv_format.row_key("2026-11-24T11:00:00+01:00,house-a,1.0,2.0,3.0,4,0.93\n") == (
        "house-a",
        datetime(2026, 11, 24, 11, tzinfo=timezone(timedelta(hours=1))),
    )


@pytest.fixture
def version_2(monkeypatch):
    """The format with a column appended — the edit of csv_format.py alone."""

    def install() -> None:
        columns = (*csv_format.COLUMNS, "kc")
        header = ",".join(columns) + "\n"
        v1_format_row = csv_format.format_row

        def format_row(local_ts, meter_id, meter_w, pv_w, seq):  # noqa: ANN001, ANN202
            return v1_format_row(local_ts, meter_id, meter_w, pv_w, seq)[:-1] + ",1.00\n"

        monkeypatch.setattr(csv_format, "COLUMNS", columns)
        monkeypatch.setattr(csv_format, "HEADER_TEXT", header)
        monkeypatch.setattr(csv_format, "HEADER", header.encode())
        monkeypatch.setattr(csv_format, "format_row", format_row)

    return install


def reading(meter: str, minute: int, seq: int) -> wire.Reading:
    return wire.Reading(meter, T0 + timedelta(minutes=minute), 100.0 + minute, seq)


def test_acknowledged_journal_rows_survive_a_column_added_by_an_upgrade(tmp_path, version_2):
    directory = tmp_path / "csv"
    directory.mkdir()
    old = SiteDayFiles(directory, BERLIN, fsync="batch", journal=True)
    for minute in (0, 1):
        assert old.add(reading("house-a", minute, minute), 10.0)
    old.write_and_sync()  # in its day file, in the format of version 1
    for minute in (2, 3):
        assert old.add(reading("house-a", minute, minute), 10.0)
    assert old.add(reading("house-b", 0, 0), 10.0)
    generation = old.append_to_journal(now=0.0)
    old.sync()
    old.mark_synced(generation)  # durable in the journal: acknowledged, then the crash
    assert old.journal_holds_rows

    version_2()  # the upgrade
    new = SiteDayFiles(directory, BERLIN, fsync="batch", journal=True)
    assert new.replay_journal() == (3, 0)  # none skipped as "not a row"
    assert new.add(reading("house-a", 4, 4), 10.0)
    assert new.add(reading("house-c", 0, 0), 10.0)
    new.close()

    a = (directory / "house-a/2026-11-24.csv").read_text().splitlines()
    assert a[0] == "timestamp,meter_id,meter_w,pv_w,sum_w,seq"  # the file's own header
    assert [csv_format.parse_row(line).seq for line in a[1:]] == [0, 1, 2, 3, 4]
    assert a[-1].endswith(",4,1.00")  # a new row, in the new format
    b = (directory / "house-b/2026-11-24.csv").read_text().splitlines()
    assert b[0] == "timestamp,meter_id,meter_w,pv_w,sum_w,seq,kc"  # new file, new header
    assert csv_format.parse_row(b[1]).seq == 0  # the journaled row of version 1 ...
    assert csv_format.parse_row(b[1]).extra == {"kc": ""}  # ... lacks the new column
    c = (directory / "house-c/2026-11-24.csv").read_text().splitlines()
    assert c == ["timestamp,meter_id,meter_w,pv_w,sum_w,seq,kc", c[1]]
    assert csv_format.parse_row(c[1]).extra == {"kc": "1.00"}
    assert (directory / ".journal").read_bytes() == b""
    # and the report reads old and new rows alike
    rows, bad = report.read_rows(directory / "house-a/2026-11-24.csv")
    assert (len(rows), bad) == (5, 0)
    summary = report.summarise("house-a", rows)
    assert summary.rows == 5 and summary.missing_seq == 0
