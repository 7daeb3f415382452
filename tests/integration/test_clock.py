"""Clocks that lie: a real meterd, in this process with only its wall-clock source
replaced, against the real broker and a real pvsimd.

* boot in 1970, then NTP steps the clock to now: nothing is sampled before, every
  reading after carries a true time;
* the clock steps back an hour: sampling goes on at the ticks of the new time (skipping
  them, since their readings were recorded already), nothing is recorded twice;
* the clock steps forward a day: the ticks in between are missed, never filled in, and
  pvsimd refuses the readings from "tomorrow" as ``future``.

(libfaketime is no option: under it Python 3.11's sleeps fail or hang.)
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from datetime import datetime

import pytest

from meterd.clock_watch import ClockState
from meterd.service import MeterDaemon
from meterd.settings import SCHEMA
from pvsim import config as c
from pvsim import wire
from pvsim.notify import Notifier
from pvsim.signals import Signals
from pvsim.topology import REASON_HEADER
from tests.support.daemons import Site, drain_queue, queue_depth
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

INTERVAL = 0.1
S = 1_000_000  # a second, in microseconds
HOUR = 3600 * S
DAY = 86_400 * S


class SteppedClock:
    """The wall clock at the real pace, plus an offset the test steps (µs)."""

    def __init__(self, offset_us: int = 0):
        self.offset_us = offset_us

    def __call__(self) -> int:
        return time.time_ns() // 1000 + self.offset_us

    def set(self, epoch_us: int) -> None:
        self.offset_us = epoch_us - time.time_ns() // 1000


class InProcessMeterd:
    """The real MeterDaemon (config, spool, sampler, publisher, session loop), serving
    in a thread here; its sampler's wall clock is ``clock``."""

    def __init__(self, site: Site, meter_id: str, clock: SteppedClock):
        config = c.load(site.meterd_config(meter_id, INTERVAL), SCHEMA)
        args = argparse.Namespace(replay=None, speed=None)
        self.daemon = MeterDaemon(config, Signals(), Notifier(), args)
        self.daemon.sampler.clock = clock  # only the wall-clock source is replaced
        self.meter_id = meter_id
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, name=f"meterd {meter_id}")

    def _serve(self) -> None:
        try:
            self.daemon.serve()
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)

    @property
    def sampler(self):  # noqa: ANN201
        return self.daemon.sampler

    def start(self) -> InProcessMeterd:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.daemon.signals.stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "meterd did not stop"
        assert not self.errors, self.errors


@pytest.fixture
def meterd(site):
    started: list[InProcessMeterd] = []

    def start(meter_id: str, clock: SteppedClock) -> InProcessMeterd:
        m = InProcessMeterd(site, meter_id, clock).start()
        started.append(m)
        return m

    yield start
    for m in started:
        if m._thread.is_alive():
            m.daemon.signals.stop.set()
            m._thread.join(30)


def row_times_us(site: Site, meter_id: str) -> list[int]:
    """The rows' timestamps, in the order of their seq."""
    rows = sorted(site.rows(meter_id), key=lambda r: int(r["seq"]))
    return [wire.to_epoch_us(datetime.fromisoformat(r["timestamp"])) for r in rows]


def stop_and_check_rows(site: Site, m: InProcessMeterd) -> list[int]:
    """Stop meterd, wait until pvsimd has every reading meterd recorded and the broker
    confirmed — a row, or a dead letter — and check no timestamp is in a row twice; the
    rows' times, by seq."""
    m.stop()
    confirmed = site.assigned(m.meter_id) - m.daemon.spool.backlog
    wait_until(
        lambda: len(site.rows(m.meter_id)) + queue_depth(site.broker_url, site.dead_letter_queue)
        >= confirmed,
        timeout=20,
        message="a row or a dead letter for every confirmed reading",
    )
    times = row_times_us(site, m.meter_id)
    assert len(set(times)) == len(times), "a timestamp recorded twice"
    assert times == sorted(times)
    return times


def warnings(caplog, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and text in r.getMessage()
    ]


def test_boot_in_1970_waits_for_a_trustworthy_clock_then_samples_from_now(
    site, meterd, caplog
):
    caplog.set_level(logging.INFO)
    pvsimd = site.start_pvsimd()
    clock = SteppedClock()
    clock.set(5 * S)  # 1970-01-01T00:00:05Z: a board without a real-time clock
    m = meterd("house-a", clock)
    wait_until(lambda: warnings(caplog, "waiting for a trustworthy clock"), timeout=10)
    status = m.daemon.status()
    assert status.startswith("waiting for a trustworthy clock: it says 1970-01-01T00:00:0")
    assert "(the build date)" in status
    assert m.sampler.watch.state == ClockState.WAITING
    assert m.sampler.sampled == 0

    stepped_at = time.time_ns() // 1000
    clock.offset_us = 0  # NTP steps the clock to now
    wait_until(lambda: len(site.rows("house-a")) >= 10, timeout=20, message="rows after NTP")
    times = stop_and_check_rows(site, m)
    assert times[0] >= stepped_at - INTERVAL * S  # nothing from 1970, nothing before now
    assert times[-1] - times[0] == (len(times) - 1) * INTERVAL * S  # every tick, one row each
    assert len(warnings(caplog, "waiting for a trustworthy clock")) == 1
    assert "trustworthy, sampling" in caplog.text
    assert m.sampler.missed == 0 and m.sampler.skipped == 0
    assert pvsimd.stop() == 0
    assert not drain_queue(site.broker_url, site.dead_letter_queue)


def test_a_step_back_of_an_hour_goes_on_at_the_new_ticks_and_records_nothing_twice(
    site, meterd, caplog
):
    pvsimd = site.start_pvsimd()
    clock = SteppedClock()
    m = meterd("house-a", clock)
    wait_until(lambda: len(site.rows("house-a")) >= 10, timeout=20, message="rows")
    newest = m.sampler.newest_us
    recorded = m.sampler.recorded
    clock.offset_us = -HOUR
    # within a few intervals it is at the ticks of the new time: skipping, not stalled
    wait_until(lambda: m.sampler.skipped >= 5, timeout=10, message="no ticks after the step")
    (warning,) = warnings(caplog, "stepped back")
    assert warning.startswith("the clock stepped back by 3600")
    assert m.sampler.watch.state == ClockState.BEHIND
    assert "samples skipped (clock stepped back)" in m.daemon.status()
    times = stop_and_check_rows(site, m)
    assert m.sampler.recorded - recorded <= 1  # at most one sampled before the step showed
    assert max(times) <= newest + INTERVAL * S
    assert m.sampler.newest_us == max(times)
    assert pvsimd.stop() == 0


def test_a_step_forward_of_a_day_misses_the_ticks_and_pvsimd_refuses_the_future(
    site, meterd, caplog
):
    pvsimd = site.start_pvsimd()
    clock = SteppedClock()
    m = meterd("house-a", clock)
    wait_until(lambda: len(site.rows("house-a")) >= 5, timeout=20, message="rows")
    stepped_at = clock()
    clock.offset_us = DAY
    wait_until(lambda: m.sampler.recorded - len(site.rows("house-a")) >= 5, timeout=10)
    (warning,) = warnings(caplog, "stepped forward")
    assert warning.startswith("the clock stepped forward by 86400")
    missed = m.sampler.missed
    assert DAY / (INTERVAL * S) - 100 <= missed <= DAY / (INTERVAL * S)  # the day's ticks
    wait_until(lambda: m.daemon.spool.backlog == 0, timeout=10, message="all confirmed")
    times = stop_and_check_rows(site, m)
    assert max(times) < stepped_at + INTERVAL * S  # nothing filled in, nothing of tomorrow
    dead = drain_queue(site.broker_url, site.dead_letter_queue)
    assert len(dead) == site.assigned("house-a") - len(times) >= 5
    for props, body in dead:
        reading = wire.decode(body)
        assert reading.ts_us >= stepped_at + DAY
        assert props.headers[REASON_HEADER].startswith(f"future: ts {wire.format_ts(reading.ts)}")
    assert pvsimd.stop() == 0
