"""The clock watch as a state machine: trust floor and steps, from what the clocks say."""

from __future__ import annotations

from meterd.clock_watch import STEP_US, ClockState, ClockWatch

S = 1_000_000  # a second in microseconds
NOW = 1_795_000_000 * S


def test_trusted_from_the_floor_on_and_without_one_always():
    watch = ClockWatch(NOW, "the build date")
    assert not watch.trusted(NOW - 1)
    assert watch.trusted(NOW)
    assert ClockWatch().trusted(0)


def test_a_later_floor_replaces_an_earlier_one_and_names_its_source():
    watch = ClockWatch(NOW, "the build date")
    watch.raise_floor(NOW - S, "the newest reading in the spool")
    assert (watch.floor_us, watch.floor_source) == (NOW, "the build date")
    watch.raise_floor(NOW + S, "the newest reading in the spool")
    assert (watch.floor_us, watch.floor_source) == (NOW + S, "the newest reading in the spool")
    watch.raise_floor(None, "nothing")
    assert watch.floor_us == NOW + S
    assert watch.state == ClockState.OK


def test_steps_are_jumps_of_the_wall_clock_against_the_monotonic_one():
    watch = ClockWatch()
    assert watch.step(NOW, 0) == 0  # the first look only sets the offset
    assert watch.step(NOW + 10 * S, 10 * S) == 0  # both moved alike
    assert watch.step(NOW + 20 * S + 86_400 * S, 20 * S) == 86_400 * S
    assert watch.step(NOW + 30 * S, 30 * S) == -86_400 * S
    assert (watch.steps_forward, watch.steps_back) == (1, 1)


def test_less_than_a_second_or_a_slew_is_no_step():
    watch = ClockWatch()
    watch.step(NOW, 0)
    assert watch.step(NOW + 10 * S + STEP_US - 1, 10 * S) == 0
    # an hour between looks: 1 s plus 500 ppm of it (1.8 s) may be a slew
    watch = ClockWatch()
    watch.step(NOW, 0)
    assert watch.step(NOW + 3602 * S, 3600 * S) == 0
    assert watch.step(NOW + 7206 * S, 7200 * S) == 4 * S  # 4 s in an hour: a step
    assert (watch.steps_forward, watch.steps_back) == (1, 0)
