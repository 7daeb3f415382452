"""The sampler: one reading per schedule tick, recorded in the spool with its seq."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from freezegun import freeze_time

from meterd import sampler as sampler_module
from meterd.clock_watch import ClockState
from meterd.load_model import RandomWalk
from meterd.sampler import Sampler
from meterd.schedule import Schedule
from meterd.spool import Spool
from pvsim import wire

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
START_US = wire.to_epoch_us(START)


class FakeClock:
    """The wall clock (epoch microseconds, calling it) and the monotonic clock
    (:meth:`mono`), moved only by the test: time passing moves both, a step only the
    wall clock."""

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us
        self.mono_us = 1_000_000_000

    def __call__(self) -> int:
        return self.now_us

    def mono(self) -> int:
        return self.mono_us

    def advance(self, us: int) -> None:
        self.now_us += us
        self.mono_us += us

    def step(self, us: int) -> None:
        self.now_us += us


class FakeStop:
    """Stands in for the stop event: waiting moves the fake clocks instead of sleeping."""

    def __init__(
        self,
        clock: FakeClock,
        until,
        extra_wait_us: dict[int, int] | None = None,
        on_wait=None,
    ):
        self.clock = clock
        self.until = until
        self.extra_wait_us = extra_wait_us or {}  # on the n-th wait, oversleep this much
        self.on_wait = on_wait or (lambda n: None)  # called after the n-th wait
        self.waits = 0

    def is_set(self) -> bool:
        return self.until()

    def wait(self, seconds: float) -> bool:
        self.waits += 1
        self.clock.advance(round(seconds * 1_000_000) + self.extra_wait_us.get(self.waits, 0))
        self.on_wait(self.waits)
        return False


class ConstantLoad:
    def __init__(self, watts: float = 500.0) -> None:
        self.watts = watts
        self.asked: list[datetime] = []

    def power_w(self, ts: datetime) -> float:
        self.asked.append(ts)
        return self.watts


@pytest.fixture
def spool(tmp_path):
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.open()
    yield spool
    spool.close()


def readings(spool: Spool) -> list[wire.Reading]:
    return [wire.decode(body) for _, body in spool.records_from(0, 1_000_000)]


def make_sampler(
    spool: Spool, interval: float = 10, model=None, clock=None, floor_us=None
) -> Sampler:
    clock = clock or FakeClock(START_US)
    return Sampler(
        "house-a",
        Schedule.every(interval),
        model or ConstantLoad(),
        spool,
        clock=clock,
        monotonic=clock.mono,
        floor_us=floor_us,
    )


def test_sample_records_a_reading_with_the_tick_time(spool):
    sampler = make_sampler(spool)
    index = sampler.schedule.first_at_or_after(START_US)
    assert sampler.sample(index) == 0
    (reading,) = readings(spool)
    assert reading == wire.Reading("house-a", START, 500.0, 0)
    assert sampler.last_ts_us == START_US
    assert sampler.recorded == 1


def test_consecutive_samples_get_consecutive_seq_and_tick_times(spool):
    sampler = make_sampler(spool, interval=0.1)
    first = sampler.schedule.first_at_or_after(START_US)
    seqs = [sampler.sample(first + k) for k in range(5)]
    assert seqs == [0, 1, 2, 3, 4]
    got = readings(spool)
    assert [r.seq for r in got] == [0, 1, 2, 3, 4]
    assert [wire.format_ts(r.ts) for r in got] == [
        "2026-11-24T10:00:00.000Z",
        "2026-11-24T10:00:00.100Z",
        "2026-11-24T10:00:00.200Z",
        "2026-11-24T10:00:00.300Z",
        "2026-11-24T10:00:00.400Z",
    ]


def test_spooled_body_is_the_wire_body_with_seq_and_id(spool):
    sampler = make_sampler(spool, model=RandomWalk(random.Random(1)))
    sampler.sample(sampler.schedule.first_at_or_after(START_US))
    ((_, body),) = spool.records_from(0, 10)
    doc = json.loads(body)
    assert doc["v"] == 1 and doc["meter_id"] == "house-a" and doc["seq"] == 0
    assert doc["ts"] == "2026-11-24T10:00:00.000Z"
    assert 200.0 <= doc["power_w"] <= 2000.0


def test_model_is_asked_for_the_tick_time_not_the_wall_clock(spool):
    model = ConstantLoad()
    sampler = make_sampler(spool, model=model)
    with freeze_time("2026-11-24 10:00:07"):  # the sample is taken late
        sampler.sample(sampler.schedule.first_at_or_after(START_US))
    assert model.asked == [START]
    assert readings(spool)[0].ts == START


def test_seq_continues_across_a_reopened_spool(tmp_path):
    directory = tmp_path / "spool"
    spool = Spool(directory, fsync=False)
    spool.open()
    sampler = make_sampler(spool)
    first = sampler.schedule.first_at_or_after(START_US)
    assert [sampler.sample(first + k) for k in range(3)] == [0, 1, 2]
    spool.close()

    spool = Spool(directory, fsync=False)  # a restart
    spool.open()
    sampler = make_sampler(spool)
    assert [sampler.sample(first + k) for k in range(3, 5)] == [3, 4]
    assert [r.seq for r in readings(spool)] == [0, 1, 2, 3, 4]  # no reuse, no gap
    spool.close()


def test_storage_failure_counts_a_miss_and_logs_once(spool, monkeypatch, caplog):
    sampler = make_sampler(spool)
    first = sampler.schedule.first_at_or_after(START_US)

    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool, "append", full)
    with caplog.at_level(logging.WARNING, logger="meterd.sampler"):
        assert sampler.sample(first) is None
        assert sampler.sample(first + 1) is None
        monkeypatch.undo()
        assert sampler.sample(first + 2) == 0
    assert sampler.missed == 2
    assert sampler.recorded == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left" in errors[0].getMessage()
    assert "recording resumed" in caplog.text


def test_on_recorded_is_called_per_recorded_sample(spool):
    calls = []
    sampler = make_sampler(spool)
    sampler.on_recorded = lambda: calls.append(1)
    first = sampler.schedule.first_at_or_after(START_US)
    sampler.sample(first)
    sampler.sample(first + 1)
    assert len(calls) == 2


def test_now_us_is_the_wall_clock_in_microseconds():
    with freeze_time("2026-11-24 10:00:05"):  # (freezegun 1.2 drops sub-seconds of time_ns)
        assert sampler_module.now_us() == START_US + 5_000_000


# --- the loop, driven by a fake clock and a fake stop event (no threads, no sleeping) --------


def test_loop_samples_every_tick_from_the_next_one_on(spool):
    clock = FakeClock(START_US + 3_500_000)  # 10:00:03.5
    sampler = make_sampler(spool, interval=10, clock=clock)
    sampler.loop(FakeStop(clock, until=lambda: spool.next_seq >= 4))
    got = readings(spool)
    assert [r.seq for r in got] == [0, 1, 2, 3]
    assert [wire.format_ts(r.ts) for r in got] == [
        "2026-11-24T10:00:10.000Z",
        "2026-11-24T10:00:20.000Z",
        "2026-11-24T10:00:30.000Z",
        "2026-11-24T10:00:40.000Z",
    ]
    assert sampler.missed == 0


def test_loop_at_a_fractional_interval_keeps_the_grid(spool):
    clock = FakeClock(START_US)
    sampler = make_sampler(spool, interval=0.02, clock=clock)
    sampler.loop(FakeStop(clock, until=lambda: spool.next_seq >= 3000))
    got = readings(spool)
    assert len(got) == 3000
    assert got[-1].ts_us - got[0].ts_us == 2999 * 20_000
    assert all(b.ts_us - a.ts_us == 20_000 for a, b in pairwise(got))


def test_loop_samples_a_slightly_late_tick_without_missing_it(spool):
    clock = FakeClock(START_US + 1)
    sampler = make_sampler(spool, interval=10, clock=clock)
    stop = FakeStop(clock, until=lambda: spool.next_seq >= 3, extra_wait_us={2: 4_000_000})
    sampler.loop(stop)
    got = readings(spool)
    assert [r.ts_us - START_US for r in got] == [10_000_000, 20_000_000, 30_000_000]
    assert sampler.missed == 0


def test_loop_skips_ticks_after_a_long_gap_and_counts_them(spool, caplog):
    clock = FakeClock(START_US + 1)
    sampler = make_sampler(spool, interval=10, clock=clock)
    # the second wait oversleeps an hour (a stopped process)
    stop = FakeStop(clock, until=lambda: spool.next_seq >= 3, extra_wait_us={2: 3_600_000_000})
    with caplog.at_level(logging.WARNING, logger="meterd.sampler"):
        sampler.loop(stop)
    got = readings(spool)
    offsets = [(r.ts_us - START_US) // 1_000_000 for r in got]
    assert offsets[0] == 10
    assert offsets[1] == 3620  # the current tick, not the stale one
    assert offsets[2] == 3630
    assert sampler.missed == 360
    assert "360 samples missed" in caplog.text


# --- the wall clock: trust floor and steps ---------------------------------------------------

BUILD_US = START_US - 86_400_000_000  # a build date a day before START


def offsets_s(spool: Spool) -> list[float]:
    return [(r.ts_us - START_US) / 1e6 for r in readings(spool)]


def test_loop_waits_for_a_clock_past_the_build_date_then_samples_from_now(spool, caplog):
    clock = FakeClock(5_000_000)  # 1970-01-01T00:00:05Z: a board without a real-time clock
    sampler = make_sampler(spool, clock=clock, floor_us=BUILD_US)
    statuses = []

    def ntp(n: int) -> None:
        statuses.append(sampler.describe_clock())
        if n == 3:
            clock.step(START_US + 3_000_000 - clock.now_us)  # NTP steps it to 10:00:03

    with caplog.at_level(logging.INFO, logger="meterd.sampler"):
        sampler.loop(FakeStop(clock, until=lambda: spool.next_seq >= 2, on_wait=ntp))
    assert offsets_s(spool) == [10, 20]  # nothing from 1970, and from the next tick on
    assert statuses[0].startswith("waiting for a trustworthy clock: it says 1970-01-01T00:00")
    assert "not before 2026-11-23T10:00:00.000Z (the build date)" in statuses[0]
    assert sampler.describe_clock() is None and sampler.watch.state == ClockState.OK
    waits = [r for r in caplog.records if "waiting for a trustworthy clock" in r.getMessage()]
    assert len(waits) == 1 and waits[0].levelno == logging.WARNING
    assert "trustworthy, sampling" in caplog.text
    assert sampler.missed == 0 and sampler.skipped == 0 and sampler.watch.steps_forward == 0


def test_the_newest_reading_in_the_spool_is_a_floor_too(spool):
    newest = START_US + 100_000_000  # recorded before a restart, at 10:01:40
    reading = wire.Reading("house-a", wire.from_epoch_us(newest), 1.0, 0)
    spool.append(lambda seq: wire.encode(reading), newest / 1e6)
    clock = FakeClock(START_US)  # the clock came back at 10:00:00, behind it
    sampler = make_sampler(spool, clock=clock, floor_us=BUILD_US)
    assert spool.newest_us == newest
    stop = FakeStop(clock, until=lambda: spool.next_seq >= 3)
    sampler.loop(stop)
    assert offsets_s(spool)[1:] == [110, 120]  # strictly after the newest reading
    assert sampler.watch.floor_source == "the newest reading in the spool"
    assert stop.waits > 100  # it waited, looking once a second


def test_a_step_forward_misses_the_ticks_between_and_fills_in_none(spool, caplog):
    clock = FakeClock(START_US + 1)
    sampler = make_sampler(spool, clock=clock, floor_us=BUILD_US)

    def jump(n: int) -> None:
        if n == 2:
            clock.step(86_400_000_000)  # one day forward

    with caplog.at_level(logging.WARNING, logger="meterd.sampler"):
        sampler.loop(FakeStop(clock, until=lambda: spool.next_seq >= 4, on_wait=jump))
    assert offsets_s(spool) == [10, 86_420, 86_430, 86_440]
    assert sampler.missed == 8_640  # the ticks of the day in between
    assert sampler.skipped == 0
    assert sampler.watch.steps_forward == 1 and sampler.watch.steps_back == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "stepped forward by 86400 s" in warning and "8640 samples missed" in warning


def test_a_step_back_follows_the_new_grid_within_an_interval_and_repeats_nothing(spool, caplog):
    clock = FakeClock(START_US + 1)
    sampler = make_sampler(spool, clock=clock, floor_us=BUILD_US)
    seen = []  # (wall clock, skipped, state) after each wait

    def step_back(n: int) -> None:
        seen.append((clock.now_us, sampler.skipped, sampler.watch.state))
        if n == 3:
            clock.step(-3_600_000_000)  # NTP steps it back an hour, after 10:00:30

    with caplog.at_level(logging.WARNING, logger="meterd.sampler"):
        sampler.loop(FakeStop(clock, until=lambda: spool.next_seq >= 5, on_wait=step_back))
    got = offsets_s(spool)
    assert got == [10, 20, 30, 40, 50]  # no timestamp twice, none before the newest
    # within one interval of the step the sampler is at its ticks again: skipping
    after_step = seen[3]
    assert after_step[2] == ClockState.BEHIND and after_step[1] == 1
    assert sampler.skipped == 360  # the ticks from 09:00:30 to 10:00:20, recorded already
    assert sampler.missed == 0
    assert sampler.watch.state == ClockState.OK and sampler.watch.steps_back == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "stepped back by 3600 s, to 2026-11-24T09:00:30.000Z" in warnings[0]
    assert "skipping the 360 up to 2026-11-24T10:00:20.000Z" in warnings[0]


def test_a_slew_is_no_step(spool):
    clock = FakeClock(START_US + 1)
    sampler = make_sampler(spool, clock=clock, floor_us=BUILD_US)

    def slew(n: int) -> None:
        clock.step(4_000)  # NTP slewing: 4 ms per 10 s (400 ppm)

    sampler.loop(FakeStop(clock, until=lambda: spool.next_seq >= 50, on_wait=slew))
    assert sampler.watch.steps_forward == sampler.watch.steps_back == 0
    assert sampler.missed == sampler.skipped == 0
