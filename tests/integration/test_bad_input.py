"""Bad input never stops pvsimd, never writes a row, never escapes the output directory."""

from __future__ import annotations

import json

import pika
import pytest

from tests.support.daemons import drain_queue, publish_raw, queue_depth
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

VALID = {"v": 1, "meter_id": "house-a", "ts": "2026-11-24T10:00:00.000Z", "power_w": 1234.5}


def _body(**changes: object) -> bytes:
    doc = {**VALID, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


BAD = [
    ("reading.house-a", b"not json"),
    ("reading.house-a", b"\xff\xfe\x00"),
    ("reading.house-a", b"[1, 2, 3]"),
    ("reading.house-a", _body(v=2)),
    ("reading.house-a", _body(power_w="high")),
    ("reading.house-a", _body(power_w=...)),
    (
        "reading.house-a",
        b'{"v": 1, "meter_id": "house-a", "ts": "2026-11-24T10:00:00Z", "power_w": NaN}',
    ),
    ("reading.house-a", _body(power_w=1e308)),
    ("reading.house-a", _body(ts="2026-11-24T10:00:00")),
    ("reading.house-a", _body(seq=-1)),
    ("reading.evil", _body(meter_id="../../etc/evil")),
    ("reading.house-b", _body()),  # routing key of another meter
]


def test_bad_messages_go_to_the_dead_letter_queue_and_valid_ones_are_written(site):
    pvsimd = site.start_pvsimd()
    wait_until(lambda: "ready" in pvsimd.log(), timeout=20)
    for routing_key, body in BAD:
        publish_raw(site.broker_url, site.exchange, routing_key, body)
    # a foreign sender: no seq, no message properties, an explicit +01:00 offset
    publish_raw(
        site.broker_url,
        site.exchange,
        "reading.house-a",
        _body(ts="2026-11-24T11:00:00+01:00"),
        pika.BasicProperties(content_type="application/json"),
    )
    wait_until(lambda: len(site.rows("house-a")) == 1, timeout=20, message="the valid row")
    wait_until(
        lambda: pvsimd.log().count("invalid message") == len(BAD),
        timeout=20,
        message="one log line per bad message",
    )
    wait_until(lambda: queue_depth(site.broker_url, site.queue) == 0, timeout=10)
    dead: list = []
    wait_until(
        lambda: (
            dead.extend(drain_queue(site.broker_url, site.dead_letter_queue))
            or len(dead) >= len(BAD)
        ),
        timeout=10,
        message="every bad message in the dead-letter queue",
    )
    assert sorted(body for _, body in dead) == sorted(body for _, body in BAD)
    for props, body in dead:
        assert props.headers["x-pvsim-reason"], body
        assert props.headers["x-pvsim-routing-key"].startswith("reading.")
    assert pvsimd.running()
    row = site.rows("house-a")[0]
    assert row["timestamp"] == "2026-11-24T11:00:00+01:00"
    assert row["seq"] == ""
    created = sorted(p.relative_to(site.root) for p in site.root.rglob("*") if p.is_file())
    assert [str(p) for p in created if p.suffix == ".csv"] == ["csv/house-a/2026-11-24.csv"]
    log = pvsimd.log()
    assert "'reading.evil'" in log and "Traceback" not in log
    assert pvsimd.stop() == 0


def test_the_same_reading_twice_gives_one_row_also_after_a_restart(site):
    pvsimd = site.start_pvsimd()
    wait_until(lambda: "ready" in pvsimd.log(), timeout=20)
    body = _body(seq=7)
    publish_raw(site.broker_url, site.exchange, "reading.house-a", body)
    publish_raw(site.broker_url, site.exchange, "reading.house-a", body)
    later = _body(seq=8, ts="2026-11-24T10:00:10.000Z")
    publish_raw(site.broker_url, site.exchange, "reading.house-a", later)
    wait_until(lambda: len(site.rows("house-a")) == 2, timeout=20)
    wait_until(lambda: queue_depth(site.broker_url, site.queue) == 0, timeout=10)
    assert pvsimd.stop() == 0

    pvsimd = site.start_pvsimd()
    publish_raw(site.broker_url, site.exchange, "reading.house-a", body)  # older repeat
    publish_raw(site.broker_url, site.exchange, "reading.house-a", later)  # newest repeat
    wait_until(lambda: queue_depth(site.broker_url, site.queue) == 0, timeout=20)
    wait_until(lambda: "Traceback" not in pvsimd.log() and pvsimd.running(), timeout=5)
    assert pvsimd.stop() == 0
    assert site.seqs("house-a") == [7, 8]


@pytest.mark.parametrize("program", ["meterd", "pvsimd"])
def test_a_bad_config_at_start_exits_78_with_one_line(site, program):
    config = site.root / "bad.ini"
    if program == "pvsimd":
        config.write_text("[site]\nlatitude = north\nlongitude = 13\n")
    else:
        config.write_text("[meter]\nid = house/a\n")
    proc = site.start(program, config, name=f"bad-{program}")
    assert proc.proc.wait(timeout=10) == 78
    lines = proc.log().strip().splitlines()
    assert len(lines) == 1, lines
    assert str(config) in lines[0]
    assert ("[site] latitude" if program == "pvsimd" else "[meter] id") in lines[0]
