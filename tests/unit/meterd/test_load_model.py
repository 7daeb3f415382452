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


# --- the profiles ([meter] profile) ----------------------------------------------------


def _meter(**keys):  # noqa: ANN202
    from meterd.settings import MeterSettings

    return MeterSettings(**{"id": "house-a", "seed": None, "max_step": 300.0, **keys})


def test_build_picks_the_profile():
    from meterd.household import Household
    from meterd.load_model import PROFILES, Uniform, build

    assert PROFILES == ("household", "random_walk", "uniform")
    assert isinstance(build(_meter(profile="household", annual_kwh=2000.0)), Household)
    assert isinstance(build(_meter(profile="random_walk")), RandomWalk)
    assert isinstance(build(_meter(profile="uniform")), Uniform)
    assert isinstance(build(_meter()), Household)  # the default


def test_a_household_without_seed_is_the_same_house_at_every_start():
    from meterd.load_model import build

    stamps = [T0 + timedelta(minutes=13 * i) for i in range(200)]
    first, second = build(_meter()), build(_meter())
    assert [first.power_w(ts) for ts in stamps] == [second.power_w(ts) for ts in stamps]


def test_uniform_is_a_pure_function_spread_over_0_to_9000():
    from meterd.load_model import Uniform, build

    stamps = [T0 + timedelta(seconds=10 * i) for i in range(5000)]
    model = Uniform("house-a", 3)
    values = [model.power_w(ts) for ts in stamps]
    assert values == [Uniform("house-a", 3).power_w(ts) for ts in reversed(stamps)][::-1]
    assert all(MIN_W <= v <= MAX_W and round(v, 1) == v for v in values)
    assert min(values) < 100 and max(values) > 8900
    assert 4300 < sum(values) / len(values) < 4700
    assert values != [Uniform("house-b", 3).power_w(ts) for ts in stamps]
    unseeded = build(_meter(profile="uniform"))  # a random seed of its own
    assert [unseeded.power_w(ts) for ts in stamps[:50]] != values[:50]


def test_random_walk_profile_uses_seed_and_max_step():
    from meterd.load_model import build

    a = build(_meter(profile="random_walk", seed=5, max_step=10.0))
    b = build(_meter(profile="random_walk", seed=5, max_step=10.0))
    assert walk(a, 100) == walk(b, 100)
    assert max(abs(y - x) for x, y in pairwise(walk(a, 100))) <= 10.0 + 0.1
