"""meterd --replay: a past period published through the spool and the broker into pvsimd's
day files, with the readings' true timestamps and the meter's own sequence."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meterd import load_model
from meterd.settings import SCHEMA
from pvsim import config as c
from tests.support.daemons import DaemonProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

DAY = datetime(2026, 6, 21, tzinfo=UTC)  # months before "now": older than max_age (7d)


def _replay(site, config, *args: str) -> DaemonProcess:
    name = f"replay-{len(site.processes)}"
    proc = DaemonProcess("meterd", config, site.root / f"{name}.log", "--replay", *args)
    site.processes.append(proc.start())
    return proc


def _ready_pvsimd(site) -> DaemonProcess:
    pvsimd = site.start_pvsimd()
    wait_until(lambda: "ready:" in pvsimd.log(), timeout=30, message="pvsimd ready")
    return pvsimd


def test_replay_of_a_day_writes_every_tick_with_the_models_values(site):
    site.timezone = "UTC"
    pvsimd = _ready_pvsimd(site)
    config = site.meterd_config("house-r", interval=10, meter={"seed": 7})

    started = time.monotonic()
    meter = _replay(site, config, "2026-06-21", "2026-06-22T00:00:00+00:00")
    assert meter.proc.wait(timeout=300) == 0, meter.log()
    took = time.monotonic() - started
    assert "replay done: 8640 readings" in meter.log()

    wait_until(lambda: len(site.rows("house-r")) >= 8640, timeout=60, message="8640 rows")
    assert pvsimd.stop() == 0, pvsimd.log()
    assert [p.name for p in site.files("house-r")] == ["2026-06-21.csv"]
    rows = site.rows("house-r")
    assert len(rows) == 8640
    assert [int(r["seq"]) for r in rows] == list(range(8640))
    expected = [DAY + timedelta(seconds=10 * i) for i in range(8640)]
    assert [datetime.fromisoformat(r["timestamp"]) for r in rows] == expected

    model = load_model.build(c.load(config, SCHEMA).meter)  # a pure function of ts
    for row, ts in zip(rows, expected, strict=True):
        assert Decimal(row["meter_w"]) == Decimal(f"{model.power_w(ts):.1f}"), row
    assert "Traceback" not in meter.log() + pvsimd.log()
    print(f"replay of 8640 readings: {took:.1f} s including start-up")


def test_replays_continue_the_meters_sequence(site):
    _ready_pvsimd(site)
    config = site.meterd_config("house-s", interval=10)
    first = _replay(site, config, "2026-06-21T10:00:00Z", "2026-06-21T11:00:00Z")
    assert first.proc.wait(timeout=120) == 0, first.log()
    second = _replay(site, config, "2026-06-21T13:00+02:00", "2026-06-21T13:30+02:00")
    assert second.proc.wait(timeout=120) == 0, second.log()
    wait_until(lambda: len(site.rows("house-s")) >= 540, timeout=60, message="540 rows")
    rows = sorted(site.rows("house-s"), key=lambda r: int(r["seq"]))
    assert [int(r["seq"]) for r in rows] == list(range(540))
    stamps = [datetime.fromisoformat(r["timestamp"]) for r in rows]
    start = datetime(2026, 6, 21, 10, tzinfo=UTC)  # 13:00+02:00 is 11:00Z
    assert stamps == [start + timedelta(seconds=10 * i) for i in range(540)]


def test_sigterm_stops_a_paced_replay_cleanly(site):
    _ready_pvsimd(site)
    config = site.meterd_config("house-t", interval=10)
    meter = _replay(site, config, "2026-06-21", "2026-06-22", "--speed", "100")
    wait_until(lambda: len(site.rows("house-t")) >= 5, timeout=60, message="first rows")
    assert meter.stop(timeout=30) == 0, meter.log()
    assert "replay stopped early" in meter.log()
    assigned = site.assigned("house-t")
    assert 5 <= assigned < 8640
    wait_until(lambda: len(site.rows("house-t")) >= assigned, timeout=30, message="all rows")
    assert sorted(site.seqs("house-t")) == list(range(assigned))


def test_replay_arguments_are_checked(site):
    config = site.meterd_config("house-u")
    bad = _replay(site, config, "2026-06-22", "2026-06-21")
    assert bad.proc.wait(timeout=30) == 2
    assert "END must be after START" in bad.log()
    speed_alone = DaemonProcess("meterd", config, site.root / "speed.log", "--speed", "2")
    site.processes.append(speed_alone.start())
    assert speed_alone.proc.wait(timeout=30) == 64
    assert "--speed needs --replay" in speed_alone.log()
