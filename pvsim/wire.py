"""Wire format v1: one meter reading per AMQP message.

Body: UTF-8 JSON ``{"v": 1, "meter_id": "house-a", "seq": 42,
"ts": "2026-11-24T10:00:00.000Z", "power_w": 1234.5}``.  Routing key ``reading.<meter_id>``
on a durable topic exchange.  Properties: content_type ``application/json``,
delivery_mode 2, message_id ``<meter_id>:<seq>``.

:func:`decode` is the single gate for everything that arrives: it either returns a
:class:`Reading` or raises :class:`InvalidReading` with a short reason.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar

VERSION = 1
CONTENT_TYPE = "application/json"
ROUTING_PREFIX = "reading."
MAX_BODY_BYTES = 4096  # a valid reading is ~100 bytes
MIN_POWER_W = 0.0
MAX_POWER_W = 9000.0
MAX_SEQ = 2**63 - 1

METER_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TS_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,  # digits are 0-9 only, not any Unicode digit
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")


class InvalidReading(ValueError):
    """A message that is not a valid v1 reading; ``str()`` is the reason."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample of a meter: its time (aware, UTC) and the power drawn."""

    meter_id: str
    ts: datetime
    power_w: float
    seq: int | None = None

    @property
    def ts_us(self) -> int:
        """The timestamp as microseconds since the Unix epoch: the reading's identity."""
        return to_epoch_us(self.ts)

    @property
    def routing_key(self) -> str:
        return routing_key(self.meter_id)

    @property
    def message_id(self) -> str | None:
        return None if self.seq is None else f"{self.meter_id}:{self.seq}"


def routing_key(meter_id: str) -> str:
    return ROUTING_PREFIX + meter_id


def is_valid_meter_id(meter_id: object) -> bool:
    """Letters, digits, '-' and '_', 1 to 64 characters: safe as a file name."""
    return isinstance(meter_id, str) and METER_ID_RE.fullmatch(meter_id) is not None


def to_epoch_us(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def format_ts(ts: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a ``Z`` (microseconds when needed)."""
    ts = ts.astimezone(UTC)
    spec = "milliseconds" if ts.microsecond % 1000 == 0 else "microseconds"
    return ts.isoformat(timespec=spec).replace("+00:00", "Z")


def parse_ts(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset; returns an aware UTC datetime."""
    m = _TS_RE.fullmatch(text)
    if m is None:
        raise InvalidReading(f"ts {text[:40]!r} is not RFC 3339 with an explicit UTC offset")
    year, month, day, hour, minute, second, frac, zulu, sign, oh, om = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        if zulu:
            tz = UTC
        else:
            offset = timedelta(hours=int(oh), minutes=int(om))
            if offset >= timedelta(hours=24) or int(om) > 59:
                raise ValueError("offset out of range")
            tz = UTC if not offset else timezone(-offset if sign == "-" else offset)
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidReading(f"ts {text[:40]!r} is not a valid time ({exc})") from None


def encode(reading: Reading) -> bytes:
    """The JSON body of a reading."""
    body: dict[str, object] = {"v": VERSION, "meter_id": reading.meter_id}
    if reading.seq is not None:
        body["seq"] = reading.seq
    body["ts"] = format_ts(reading.ts)
    body["power_w"] = reading.power_w
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def _reject_constant(name: str) -> None:
    raise InvalidReading(f"non-finite number {name} in body")


# One decoder for every message: json.loads with an argument builds a new one per call.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)
_scan_json = _JSON.scan_once
_meter_id_ok = METER_ID_RE.fullmatch

def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_json(text: str) -> object:
    try:
        doc, end = _scan_json(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):  # whitespace around it, or not JSON: the full decoder says which
        doc = _JSON.decode(text)
    return doc


def decode(body: bytes) -> Reading:
    """Validate a message body and return its reading, or raise :class:`InvalidReading`."""
    return Reading(*decode_with(body, parse_ts))


def decode_with(body: bytes, at: Callable[[str], T]) -> tuple[str, T, float, int | None]:
    """:func:`decode`, with the timestamp's text turned into a ``T`` by ``at`` (which
    raises InvalidReading for a bad one, as :func:`parse_ts` does): (meter_id, at(ts),
    power_w, seq).  pvsimd passes the cache of its per-reading context here."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidReading(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidReading("body is not valid UTF-8") from None
    try:
        doc = _parse_json(text)
    except InvalidReading:
        raise
    except (ValueError, RecursionError) as exc:
        raise InvalidReading(f"body is not JSON ({str(exc)[:60]})") from None
    if doc.__class__ is not dict:
        raise InvalidReading("body is not a JSON object")
    get = doc.get

    v = get("v")
    if v != VERSION or v.__class__ not in (int, float):  # not True: bool is not int here
        raise InvalidReading(f"unsupported version v={v!r:.20}, expected {VERSION}")

    meter_id = get("meter_id")
    if meter_id.__class__ is not str or _meter_id_ok(meter_id) is None:
        if meter_id is None:
            raise InvalidReading("missing field meter_id")
        raise InvalidReading(
            f"meter_id {str(meter_id)[:70]!r} is not 1-64 letters, digits, '-' or '_'"
        )

    seq = get("seq")
    if seq is not None and (seq.__class__ is not int or not 0 <= seq <= MAX_SEQ):
        raise InvalidReading(f"seq {str(seq)[:30]!r} is not a non-negative integer")

    ts_text = get("ts")
    if ts_text.__class__ is not str:
        if ts_text is None:
            raise InvalidReading("missing field ts")
        if not isinstance(ts_text, str):
            raise InvalidReading("ts is not a string")
    ts = at(ts_text)

    power = get("power_w")
    if power.__class__ is not float:
        if power is None:
            raise InvalidReading("missing field power_w")
        if not _is_number(power):
            raise InvalidReading("power_w is not a number")
        power = float(power) if abs(power) < 2**53 else math.inf
    if not MIN_POWER_W <= power <= MAX_POWER_W:  # also false for NaN
        raise InvalidReading(
            f"power_w {str(doc['power_w'])[:30]} is outside {MIN_POWER_W:g}..{MAX_POWER_W:g} W"
        )
    return meter_id, ts, power, seq
