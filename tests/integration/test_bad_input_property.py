"""Property-based: malformed messages through the real broker, interleaved with valid ones.

Every bad message must end in the dead-letter queue, every valid one in its row, and
pvsimd must keep running.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta

import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.daemons import drain_queue, publish_raw, queue_depth
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

_counter = itertools.count()
BASE = datetime(2026, 6, 21, tzinfo=UTC)

non_strings = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_scalars = st.one_of(non_strings, st.text(max_size=20))
bad_meter_ids = st.one_of(
    st.sampled_from(["", ".", "..", "../x", "a/b", "a.b", "x" * 65, "höuse", "a b", "a\x00b"]),
    non_strings,
)
bad_ts = st.one_of(
    st.sampled_from(
        [
            "2026-11-24T10:00:00",
            "2026-11-24",
            "2026-02-30T10:00:00Z",
            "24.11.2026 10:00",
            "2026-11-24T25:00:00Z",
            "2026-11-24T10:00:00+24:00",
            "",
        ]
    ),
    non_strings,
)
bad_power = st.one_of(
    st.sampled_from([-1, -0.1, 9000.1, 1e308, 10**30, "1234", True, None, [1], {"w": 1}]),
    st.floats(min_value=9000.01, allow_infinity=False, allow_nan=False),
    st.floats(max_value=-0.01, allow_infinity=False, allow_nan=False),
)


def _valid_doc(meter_id: str, n: int, power: float) -> dict:
    ts = BASE + timedelta(seconds=10 * n)
    return {
        "v": 1,
        "meter_id": meter_id,
        "seq": n,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "power_w": power,
    }


@st.composite
def bad_message(draw) -> tuple[str, bytes]:
    """(routing key suffix, body) of a message that is not a valid v1 reading."""
    doc = _valid_doc("house-a", draw(st.integers(0, 8000)), 100.0)
    kind = draw(
        st.sampled_from(
            ["bytes", "text", "json", "v", "meter", "ts", "power", "missing", "nan", "utf8"]
        )
    )
    if kind == "bytes":
        return "house-a", draw(st.binary(max_size=200))
    if kind == "text":
        return "house-a", draw(st.text(max_size=100)).encode() + b"{"
    if kind == "json":
        return "house-a", json.dumps(draw(st.lists(json_scalars, max_size=5))).encode()
    if kind == "v":
        doc["v"] = draw(json_scalars.filter(lambda v: v != 1 or isinstance(v, bool)))
    elif kind == "meter":
        doc["meter_id"] = draw(bad_meter_ids)
    elif kind == "ts":
        doc["ts"] = draw(bad_ts)
    elif kind == "power":
        doc["power_w"] = draw(bad_power)
    elif kind == "missing":
        del doc[draw(st.sampled_from(["v", "meter_id", "ts", "power_w"]))]
    elif kind == "nan":
        doc["power_w"] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        return "house-a", json.dumps(doc).encode()  # json writes NaN / Infinity
    elif kind == "utf8":
        return "house-a", json.dumps(doc).encode().replace(b"house-a", b"house-\xff")
    return "house-a", json.dumps(doc).encode()


bad_properties = st.builds(
    pika.BasicProperties,
    content_type=st.one_of(st.none(), st.sampled_from(["text/plain", "application/json", "x"])),
    headers=st.one_of(
        st.none(), st.dictionaries(st.text("abc", min_size=1), st.integers(-(2**63), 2**63 - 1))
    ),
    delivery_mode=st.sampled_from([1, 2]),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    messages=st.lists(
        st.one_of(
            st.tuples(st.just("valid"), st.floats(0, 9000, allow_nan=False), bad_properties),
            st.tuples(bad_message(), st.none(), bad_properties),
        ),
        min_size=100,
        max_size=300,
    )
)
def test_every_bad_message_is_dead_lettered_and_every_valid_one_written(running_pvsimd, messages):
    site, pvsimd = running_pvsimd
    meter = f"prop-{next(_counter)}"  # a fresh meter per example: rows counted per example
    conn = pika.BlockingConnection(pika.URLParameters(site.broker_url))
    ch = conn.channel()
    ch.confirm_delivery()
    valid, bad = 0, []
    for item, power, props in messages:
        if item == "valid":
            body = json.dumps(_valid_doc(meter, valid, round(power, 1))).encode()
            ch.basic_publish(site.exchange, f"reading.{meter}", body, props)
            valid += 1
        else:
            _key, body = item
            ch.basic_publish(site.exchange, "reading.house-a", body, props)
            bad.append(body)
    conn.close()

    wait_until(lambda: len(site.rows(meter)) == valid, timeout=60, message="valid rows")
    dead: list = []
    wait_until(
        lambda: (
            dead.extend(drain_queue(site.broker_url, site.dead_letter_queue))
            or len(dead) >= len(bad)
        ),
        timeout=60,
        message="dead letters",
    )
    assert sorted(body for _, body in dead) == sorted(bad)
    assert all(props.headers["x-pvsim-reason"] for props, _ in dead)
    assert site.seqs(meter) == list(range(valid))
    assert pvsimd.running()


def test_a_10_mb_body_is_dead_lettered_too(running_pvsimd):
    site, pvsimd = running_pvsimd
    body = b'{"v": 1, "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    conn = pika.BlockingConnection(pika.URLParameters(site.broker_url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish(site.exchange, "reading.house-a", body)
    conn.close()
    dead: list = []
    wait_until(
        lambda: dead.extend(drain_queue(site.broker_url, site.dead_letter_queue)) or dead,
        timeout=60,
    )
    assert len(dead) == 1 and dead[0][1] == body
    assert "exceeds" in dead[0][0].headers["x-pvsim-reason"]
    assert pvsimd.running()


@pytest.fixture
def running_pvsimd(site):
    pvsimd = site.start_pvsimd(logging={"level": "info"})
    # ready = its queue is declared and bound (passive declare fails until then)
    wait_until(lambda: queue_depth(site.broker_url, site.queue) == 0, timeout=20)

    # a first valid reading proves pvsimd consumes before the examples start
    publish_raw(
        site.broker_url,
        site.exchange,
        "reading.warmup",
        json.dumps(_valid_doc("warmup", 0, 1.0)).encode(),
    )
    wait_until(lambda: site.rows("warmup"), timeout=20, message="pvsimd consuming")
    yield site, pvsimd
    assert pvsimd.stop() == 0
    assert "Traceback" not in pvsimd.log()
