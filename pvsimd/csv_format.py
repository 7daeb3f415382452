"""The CSV format of the day files: header, row formatting and row parsing, in one place.

``timestamp,meter_id,meter_w,pv_w,sum_w,seq`` — the reading's time in the site's
timezone with its UTC offset, the meter, the meter's and the PV's power and their sum in
watts with one decimal, and the reading's seq (empty when the sender gave none).

Columns are only ever appended (the README promises that more may follow).  So every
reader here takes the columns it knows by position and ignores the rest, and a row with
fewer columns than :data:`COLUMNS` lacks only columns added later (read as empty): rows
written by an earlier version — in a day file or still in the journal after an
upgrade — parse as they did.  The identity of a row, (meter_id, timestamp), is its first
two columns and never changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from pvsim import wire

COLUMNS: tuple[str, ...] = ("timestamp", "meter_id", "meter_w", "pv_w", "sum_w", "seq")
HEADER_TEXT = ",".join(COLUMNS) + "\n"
HEADER = HEADER_TEXT.encode()


def format_local_ts(ts: datetime, tz: tzinfo) -> str:
    """``ts`` in ``tz``, ISO 8601 with its offset: seconds, or milli/microseconds when set."""
    local = ts.astimezone(tz)
    if local.microsecond == 0:
        return local.isoformat(timespec="seconds")
    if local.microsecond % 1000 == 0:
        return local.isoformat(timespec="milliseconds")
    return local.isoformat(timespec="microseconds")


def format_row(local_ts: str, meter_id: str, meter_w: float, pv_w: float, seq: int | None) -> str:
    """One row, newline included.  Watts with one decimal; ``sum_w`` from the rounded
    values, so the row adds up as written (an integer number of tenths divided by 10 is
    the double nearest that decimal, which ".1f" prints exactly)."""
    meter = round(meter_w * 10)
    pv = round(pv_w * 10)
    return (
        f"{local_ts},{meter_id},{meter / 10:.1f},{pv / 10:.1f},{(meter + pv) / 10:.1f},"
        f"{'' if seq is None else seq}\n"
    )


def is_header(line: str | bytes) -> bool:
    """True for a header line (of this or any version: it starts with the first column)."""
    start = COLUMNS[0] + ","
    if isinstance(line, bytes):
        return line.startswith(start.encode())
    return line.startswith(start)


def ts_of(field: str | bytes) -> datetime:
    """The aware time of a row's timestamp field; ValueError when it has no UTC offset."""
    if isinstance(field, bytes):
        field = field.decode()
    ts = datetime.fromisoformat(field)
    if ts.utcoffset() is None:
        raise ValueError(f"timestamp {field[:40]!r} has no UTC offset")
    return ts


def row_ts_us(line: str | bytes) -> int:
    """The identity (epoch microseconds) of a row's timestamp; ValueError if there is none."""
    sep = b"," if isinstance(line, bytes) else ","
    return wire.to_epoch_us(ts_of(line.split(sep, 1)[0]))  # type: ignore[arg-type]


def row_key(line: str) -> tuple[str, datetime]:
    """(meter_id, local time) of a row: where it belongs and its identity.  ValueError
    when the line is not a row (no valid meter id, no timestamp with an offset)."""
    fields = line.split(",", 2)
    if len(fields) < 2:
        raise ValueError("not a row: fewer than two columns")
    ts_text, meter_id = fields[0], fields[1].rstrip("\n")
    if not wire.is_valid_meter_id(meter_id):
        raise ValueError(f"not a row: {meter_id[:70]!r} is no meter id")
    return meter_id, ts_of(ts_text)


#: the columns :class:`Row` has typed fields for (columns of version 1: never fewer)
TYPED = 6


@dataclass(frozen=True)
class Row:
    """A parsed row.  ``extra`` holds the columns after the typed ones by name (empty
    for a row written before its column existed), and any further unnamed ones as
    ``"#<index>"``."""

    ts: datetime
    meter_id: str
    meter_w: float
    pv_w: float
    sum_w: float
    seq: int | None
    extra: dict[str, str] = field(default_factory=dict)


def parse_row(line: str) -> Row:
    """A row's values; ValueError when it is not a row this format can read."""
    fields = line.rstrip("\r\n").split(",")
    if len(fields) < TYPED:
        raise ValueError(f"not a row: {len(fields)} columns, at least {TYPED} expected")
    meter_id, ts = row_key(f"{fields[0]},{fields[1]}")
    meter_w, pv_w, sum_w = (float(x) for x in fields[2:5])
    seq = int(fields[5]) if fields[5] else None
    named = len(COLUMNS)
    fields += [""] * (named - len(fields))  # columns added after the row was written
    extra = dict(zip(COLUMNS[TYPED:], fields[TYPED:named], strict=True))
    extra.update((f"#{i}", fields[i]) for i in range(named, len(fields)))
    return Row(ts, meter_id, meter_w, pv_w, sum_w, seq, extra)
