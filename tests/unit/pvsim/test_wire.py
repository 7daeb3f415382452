"""Wire format v1: encode, decode, and the reasons a body is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pvsim import wire
from pvsim.wire import InvalidReading, Reading

EXAMPLE = b'{"v": 1, "meter_id": "house-a", "seq": 42, "ts": "2026-11-24T10:00:00.000Z", "power_w": 1234.5}'  # noqa: E501

GOOD = {"v": 1, "meter_id": "house-a", "seq": 42, "ts": "2026-11-24T10:00:00.000Z", "power_w": 1.5}


def body(**changes: object) -> bytes:
    doc = dict(GOOD)
    for key, value in changes.items():
        if value is DROP:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc).encode()


DROP = object()


def test_example_body_decodes():
    reading = wire.decode(EXAMPLE)
    assert reading == Reading(
        meter_id="house-a",
        ts=datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
        power_w=1234.5,
        seq=42,
    )
    assert reading.ts.utcoffset() == timedelta(0)
    assert reading.message_id == "house-a:42"
    assert reading.routing_key == "reading.house-a"


def test_encode_decode_round_trip():
    reading = Reading("house-b", datetime(2026, 3, 29, 1, 0, 10, tzinfo=UTC), 987.6, 7)
    assert wire.decode(wire.encode(reading)) == reading


def test_encoded_body_is_the_documented_json():
    reading = Reading("house-a", datetime(2026, 11, 24, 10, 0, tzinfo=UTC), 1234.5, 42)
    assert json.loads(wire.encode(reading)) == {
        "v": 1,
        "meter_id": "house-a",
        "seq": 42,
        "ts": "2026-11-24T10:00:00.000Z",
        "power_w": 1234.5,
    }


def test_seq_may_be_absent():
    reading = wire.decode(body(seq=DROP))
    assert reading.seq is None
    assert reading.message_id is None
    assert "seq" not in json.loads(wire.encode(reading))


def test_ts_with_offset_is_converted_to_utc():
    reading = wire.decode(body(ts="2026-11-24T11:00:00+01:00"))
    assert reading.ts == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert reading.ts.utcoffset() == timedelta(0)
    assert reading.ts.hour == 10


def test_ts_with_negative_half_hour_offset_is_converted_to_utc():
    reading = wire.decode(body(ts="2026-11-24T06:30:00-03:30"))
    assert reading.ts == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_ts_keeps_microseconds():
    reading = wire.decode(body(ts="2026-11-24T10:00:00.123456Z"))
    assert reading.ts.microsecond == 123456


def test_integer_power_is_accepted_as_float():
    reading = wire.decode(body(power_w=9000))
    assert reading.power_w == 9000.0 and isinstance(reading.power_w, float)


def test_power_bounds_are_inclusive():
    assert wire.decode(body(power_w=0)).power_w == 0.0
    assert wire.decode(body(power_w=9000.0)).power_w == 9000.0


def test_format_ts_gives_milliseconds_and_z():
    assert wire.format_ts(datetime(2026, 11, 24, 10, 0, tzinfo=UTC)) == "2026-11-24T10:00:00.000Z"
    assert (
        wire.format_ts(datetime(2026, 11, 24, 10, 0, 0, 20000, tzinfo=UTC))
        == "2026-11-24T10:00:00.020Z"
    )


def test_format_ts_converts_to_utc():
    berlin = timezone(timedelta(hours=1))
    assert wire.format_ts(datetime(2026, 11, 24, 11, 0, tzinfo=berlin)) == (
        "2026-11-24T10:00:00.000Z"
    )


def test_epoch_microseconds_round_trip():
    ts = datetime(2026, 11, 24, 10, 0, 0, 1, tzinfo=UTC)
    assert wire.to_epoch_us(ts) == 1795514400_000001
    assert wire.from_epoch_us(wire.to_epoch_us(ts)) == ts


# --- refused bodies ------------------------------------------------------------------------

INVALID = {
    "not utf-8": b'{"v": 1, "meter_id": "h\xff"}',
    "not json": b"v=1 meter_id=house-a",
    "empty body": b"",
    "json array": b"[1, 2, 3]",
    "json string": b'"reading"',
    "nan constant": b'{"v": 1, "meter_id": "a", "ts": "2026-11-24T10:00:00Z", "power_w": NaN}',
    "infinity constant": (
        b'{"v": 1, "meter_id": "a", "ts": "2026-11-24T10:00:00Z", "power_w": Infinity}'
    ),
    "v missing": body(v=DROP),
    "v 2": body(v=2),
    "v string": body(v="1"),
    "v true": body(v=True),
    "v null": body(v=None),
    "meter_id missing": body(meter_id=DROP),
    "meter_id dot-dot-slash": body(meter_id="../x"),
    "meter_id slash": body(meter_id="a/b"),
    "meter_id empty": body(meter_id=""),
    "meter_id 65 chars": body(meter_id="a" * 65),
    "meter_id dot": body(meter_id="."),
    "meter_id space": body(meter_id="house a"),
    "meter_id non-ascii": body(meter_id="häuser"),
    "meter_id newline": body(meter_id="house\n"),
    "meter_id number": body(meter_id=12),
    "meter_id list": body(meter_id=["a"]),
    "seq negative": body(seq=-1),
    "seq float": body(seq=1.0),
    "seq bool": body(seq=True),
    "seq string": body(seq="42"),
    "seq too big": body(seq=2**63),
    "ts missing": body(ts=DROP),
    "ts number": body(ts=1795514400),
    "ts without offset": body(ts="2026-11-24T10:00:00"),
    "ts date only": body(ts="2026-11-24"),
    "ts invalid date": body(ts="2026-02-30T10:00:00Z"),
    "ts hour 24": body(ts="2026-11-24T24:00:00Z"),
    "ts offset 24h": body(ts="2026-11-24T10:00:00+24:00"),
    "ts offset minutes 99": body(ts="2026-11-24T10:00:00+01:99"),
    "ts non-ascii digits": body(ts="\uff12\uff10\uff12\uff16-11-24T10:00:00Z"),
    "ts leap second": body(ts="2026-12-31T23:59:60Z"),
    "ts with space": body(ts="2026-11-24 10:00:00Z"),
    "ts trailing text": body(ts="2026-11-24T10:00:00Zjunk"),
    "ts out of datetime range": body(ts="9999-12-31T23:00:00-02:00"),
    "power_w missing": body(power_w=DROP),
    "power_w string": body(power_w="1234.5"),
    "power_w bool": body(power_w=True),
    "power_w null": body(power_w=None),
    "power_w negative": body(power_w=-1),
    "power_w above 9000": body(power_w=9000.1),
    "power_w 1e308": body(power_w=1e308),
    "power_w 1e400 overflows to inf": body(power_w=0).replace(b'"power_w": 0', b'"power_w": 1e400'),
    "power_w huge integer": body(power_w=10**30),
    "body too big": body(pad="x" * wire.MAX_BODY_BYTES),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_invalid_body_raises_invalid_reading(case):
    with pytest.raises(InvalidReading) as info:
        wire.decode(INVALID[case])
    reason = str(info.value)
    assert reason and "\n" not in reason


def test_nan_power_is_refused_with_a_reason():
    with pytest.raises(InvalidReading, match="non-finite"):
        wire.decode(INVALID["nan constant"])


def test_missing_field_is_named():
    with pytest.raises(InvalidReading, match="power_w"):
        wire.decode(body(power_w=DROP))
    with pytest.raises(InvalidReading, match="meter_id"):
        wire.decode(body(meter_id=DROP))


def test_body_just_within_the_limit_is_accepted():
    room = wire.MAX_BODY_BYTES - len(body(pad=""))
    assert len(body(pad="x" * room)) == wire.MAX_BODY_BYTES
    assert wire.decode(body(pad="x" * room)).meter_id == "house-a"
    with pytest.raises(InvalidReading, match="exceeds"):
        wire.decode(body(pad="x" * (room + 1)))


def test_deeply_nested_json_is_refused_not_crashing():
    with pytest.raises(InvalidReading):
        wire.decode(b"[" * 4000 + b"]" * 4000)
    with pytest.raises(InvalidReading):
        wire.decode(b'{"v": 1, "meter_id": ' + b"[" * 2000 + b"]" * 2000 + b"}")


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decode_of_arbitrary_bytes_raises_only_invalid_reading(data):
    try:
        reading = wire.decode(data)
    except InvalidReading:
        return
    assert isinstance(reading, Reading)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)

field_values = {
    "v": st.one_of(st.just(1), st.just(1.0), json_values),
    "meter_id": st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True), json_values),
    "seq": st.one_of(st.integers(min_value=-5, max_value=2**64), json_values),
    "ts": st.one_of(
        st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
        st.from_regex(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", fullmatch=True
        ),
        json_values,
    ),
    "power_w": st.one_of(st.floats(), st.integers(), json_values),
}


@st.composite
def json_ish_dicts(draw):
    doc = {}
    for key, values in field_values.items():
        if draw(st.integers(0, 9)):  # mostly present
            doc[key] = draw(values)
    doc.update(draw(st.dictionaries(st.text(max_size=5), json_values, max_size=2)))
    return doc


@settings(max_examples=150, deadline=None)
@given(json_ish_dicts())
def test_decode_of_arbitrary_json_dicts_raises_only_invalid_reading(doc):
    data = json.dumps(doc).encode()  # NaN/Infinity pass as their JS names
    try:
        reading = wire.decode(data)
    except InvalidReading:
        return
    assert wire.is_valid_meter_id(reading.meter_id)
    assert 0.0 <= reading.power_w <= 9000.0
    assert reading.ts.utcoffset() == timedelta(0)
    assert reading.seq is None or reading.seq >= 0


valid_readings = st.builds(
    Reading,
    meter_id=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    ts=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    power_w=st.floats(min_value=0.0, max_value=9000.0),
    seq=st.none() | st.integers(min_value=0, max_value=wire.MAX_SEQ),
)


@settings(max_examples=300, deadline=None)
@given(valid_readings)
def test_any_valid_reading_round_trips(reading):
    data = wire.encode(reading)
    assert len(data) <= wire.MAX_BODY_BYTES
    assert wire.decode(data) == reading


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.just(UTC),
    ),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_any_offset_denotes_the_same_instant(ts, offset_min):
    local = ts.astimezone(timezone(timedelta(minutes=offset_min)))
    text = local.isoformat()
    assert wire.parse_ts(text) == ts
