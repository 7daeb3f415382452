"""The sampling schedule: tick k at exactly k x interval since the epoch, in integer µs."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest

from meterd.schedule import Schedule
from pvsim import wire

MIDNIGHT_US = wire.to_epoch_us(datetime(2026, 11, 24, tzinfo=UTC))


@pytest.mark.parametrize(
    ("seconds", "us"), [(10, 10_000_000), (0.1, 100_000), (0.02, 20_000), (0.001, 1000)]
)
def test_interval_is_whole_microseconds(seconds, us):
    assert Schedule.every(seconds).interval_us == us


@pytest.mark.parametrize("seconds", [0, -1, 1e-7])
def test_interval_must_be_positive(seconds):
    with pytest.raises(ValueError):
        Schedule.every(seconds)


@pytest.mark.parametrize(
    ("seconds", "us", "last_ts"),
    [(0.02, 20_000, "2026-11-24T05:33:20.000Z"), (0.1, 100_000, "2026-11-25T03:46:40.000Z")],
)
def test_fractional_interval_does_not_drift_over_a_million_ticks(seconds, us, last_ts):
    schedule = Schedule.every(seconds)
    start = schedule.first_at_or_after(MIDNIGHT_US)
    times = [schedule.time_of(start + k) for k in range(1_000_001)]
    assert all(b - a == us for a, b in pairwise(times))
    assert times[-1] - times[0] == 1_000_000 * us
    assert wire.format_ts(wire.from_epoch_us(times[-1])) == last_ts


def test_float_accumulation_would_drift_but_the_schedule_does_not():
    acc = 0.0
    for _ in range(1_000_000):
        acc += 0.1
    assert acc != 100_000.0  # what a naive `t += interval` loop ends up with
    assert Schedule.every(0.1).time_of(1_000_000) == 100_000 * 1_000_000


def test_ticks_fall_on_the_epoch_grid():
    schedule = Schedule.every(10)
    index = schedule.first_at_or_after(MIDNIGHT_US + 1)
    assert schedule.time_of(index) == MIDNIGHT_US + 10_000_000
    assert datetime.fromtimestamp(schedule.time_of(index) / 1e6, UTC).second == 10


@pytest.mark.parametrize(("seconds", "ticks"), [(10, 8640), (0.1, 864_000), (7, 12_343)])
def test_a_day_holds_the_expected_number_of_ticks(seconds, ticks):
    schedule = Schedule.every(seconds)
    first = schedule.first_at_or_after(MIDNIGHT_US)
    end = schedule.first_at_or_after(MIDNIGHT_US + 86_400_000_000)
    assert end - first == ticks


def test_first_at_or_after_a_tick_is_that_tick():
    schedule = Schedule.every(10)
    assert schedule.first_at_or_after(MIDNIGHT_US) * 10_000_000 == MIDNIGHT_US


def test_first_at_or_after_between_ticks_is_the_next_tick():
    schedule = Schedule.every(10)
    index = schedule.first_at_or_after(MIDNIGHT_US + 9_999_999)
    assert schedule.time_of(index) == MIDNIGHT_US + 10_000_000
    assert schedule.first_at_or_after(MIDNIGHT_US + 1) == index


def test_first_at_or_after_zero():
    assert Schedule.every(0.02).first_at_or_after(0) == 0
    assert Schedule.every(0.02).first_at_or_after(1) == 1


def test_tolerance_is_one_interval_but_at_least_two_seconds():
    assert Schedule.every(10).tolerance_us == 10_000_000
    assert Schedule.every(0.1).tolerance_us == 2_000_000


def test_catch_up_on_time_samples_the_tick():
    schedule = Schedule.every(10)
    index = schedule.first_at_or_after(MIDNIGHT_US)
    assert schedule.catch_up(index, schedule.time_of(index)) == (index, 0)


def test_catch_up_a_little_late_still_samples_the_late_tick():
    schedule = Schedule.every(10)
    index = schedule.first_at_or_after(MIDNIGHT_US)
    due = schedule.time_of(index)
    assert schedule.catch_up(index, due + 3_000_000) == (index, 0)
    assert schedule.catch_up(index, due + 10_000_000) == (index, 0)  # exactly the tolerance


def test_catch_up_within_two_seconds_at_a_short_interval_loses_nothing():
    schedule = Schedule.every(0.1)
    index = 1000
    due = schedule.time_of(index)
    assert schedule.catch_up(index, due + 1_900_000) == (index, 0)
    assert schedule.catch_up(index, due + 2_000_000) == (index, 0)


def test_catch_up_after_a_long_gap_skips_to_the_current_tick():
    schedule = Schedule.every(10)
    index = schedule.first_at_or_after(MIDNIGHT_US)
    due = schedule.time_of(index)
    now = due + 3_600_000_000 + 4_000_000  # an hour and 4 s later (a suspended machine)
    current, skipped = schedule.catch_up(index, now)
    assert skipped == 360
    assert current == index + 360
    assert schedule.time_of(current) <= now < schedule.time_of(current + 1)


def test_catch_up_just_beyond_tolerance_skips():
    schedule = Schedule.every(0.1)
    index = 1000
    current, skipped = schedule.catch_up(index, schedule.time_of(index) + 2_500_000)
    assert (current, skipped) == (1025, 25)
