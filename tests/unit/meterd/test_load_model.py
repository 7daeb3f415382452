"""The household load: a random but continuous walk within 0-9000 W."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from meterd.load_model import MAX_W, MIN_W, RandomWalk

T0 = datetime(2026, 11, 24, tzinfo=UTC)


def walk(model: RandomWalk, n: int) -> list[float]:
    return [model.power_w(T0 + timedelta(seconds=10 * i)) for i in range(n)]


def test_values_stay_within_0_and_9000_w():
    values = walk(RandomWalk(random.Random(1), max_step_w=3000.0), 20_000)
    assert all(MIN_W <= v <= MAX_W for v in values)
    assert min(values) < 500 and max(values) > 8500  # the walk did reach both bounds


def test_each_step_is_at_most_max_step():
    values = walk(RandomWalk(random.Random(2), max_step_w=300.0), 10_000)
    steps = [abs(b - a) for a, b in pairwise(values)]
    assert max(steps) <= 300.0
    assert max(steps) > 250.0  # and it does move


def test_walk_reflects_at_the_bounds_without_sticking():
    low = RandomWalk(random.Random(3), max_step_w=100.0, start_w=0.0)
    assert sum(v == 0.0 for v in walk(low, 1000)) < 10
    high = RandomWalk(random.Random(3), max_step_w=100.0, start_w=9000.0)
    assert sum(v == 9000.0 for v in walk(high, 1000)) < 10


def test_values_are_rounded_to_tenths_of_a_watt():
    for v in walk(RandomWalk(random.Random(4)), 1000):
        assert round(v, 1) == v


def test_same_seed_gives_same_sequence():
    assert walk(RandomWalk(random.Random(42)), 500) == walk(RandomWalk(random.Random(42)), 500)


def test_different_seeds_give_different_sequences():
    assert walk(RandomWalk(random.Random(1)), 50) != walk(RandomWalk(random.Random(2)), 50)


def test_first_value_is_a_plausible_household_load():
    for seed in range(50):
        assert 200.0 <= RandomWalk(random.Random(seed)).power_w(T0) <= 2000.0


def test_start_value_continues_from_there():
    model = RandomWalk(random.Random(5), max_step_w=10.0, start_w=4000.0)
    assert abs(model.power_w(T0) - 4000.0) <= 10.0


def test_zero_max_step_keeps_the_load_constant():
    model = RandomWalk(random.Random(6), max_step_w=0.0, start_w=1234.5)
    assert set(walk(model, 100)) == {1234.5}


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**64),
    max_step=st.floats(min_value=0.0, max_value=9000.0),
    start=st.none() | st.floats(min_value=0.0, max_value=9000.0),
)
def test_walk_stays_in_bounds_and_continuous_for_any_seed(seed, max_step, start):
    model = RandomWalk(random.Random(seed), max_step_w=max_step, start_w=start)
    values = walk(model, 300)
    assert all(MIN_W <= v <= MAX_W for v in values)
    previous = start if start is not None else values[0]
    for v in values:
        # rounding to 0.1 W may add up to 0.05 W on each side
        assert abs(v - previous) <= max_step + 0.1 + 1e-9
        previous = v
