"""Seeded weather: the clear-sky index kc (global irradiance over its clear-sky value).

A pure function of (seed, day, time), so a restart or a replay of old readings gives the
same value for the same timestamp, and nothing is carried from one call to the next.

- Each day (in the site's mean solar time, so a day changes at solar midnight, in the
  dark) has a type, **clear**, **mixed** or **overcast**, following a Markov chain: the
  weather tends to persist (:data:`TRANSITIONS`).  The type of day *d* is found by
  running the chain from 16 days earlier with one seeded draw per day; chains started in
  different states almost always meet within those days (each step merges them with
  probability 0.4), so consecutive days follow the chain's transitions.
- The day's mean kc is drawn within the type's range, and kc varies smoothly within the
  day: the sum of a slow (hourly knots) and a fast (10-minute knots) seeded value noise,
  with amplitudes by type — a clear day wobbles a little, a mixed day alternates between
  sun and passing clouds, an overcast day stays dark.
- The result is clipped to 0.05..1.0: clouds only ever remove light here (no cloud
  enhancement above the clear sky).
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

KC_MIN = 0.05
KC_MAX = 1.0
LOOKBACK_DAYS = 16
SLOW_PERIOD_S = 3600.0
FAST_PERIOD_S = 600.0


@dataclass(frozen=True)
class DayType:
    """A kind of day (clear, mixed, overcast): the range of its mean kc and how much kc
    varies."""

    name: str
    mean_low: float  # the day's mean kc is drawn within mean_low..mean_high
    mean_high: float
    slow_amplitude: float
    fast_amplitude: float


DAY_TYPES = (
    DayType("clear", 0.92, 1.0, 0.03, 0.0),
    DayType("mixed", 0.5, 0.8, 0.15, 0.3),
    DayType("overcast", 0.15, 0.4, 0.1, 0.05),
)
# TRANSITIONS[today][tomorrow]: probabilities, rows in DAY_TYPES order
TRANSITIONS = (
    (0.60, 0.30, 0.10),
    (0.30, 0.45, 0.25),
    (0.15, 0.35, 0.50),
)


def _stationary() -> tuple[float, ...]:
    p = [1.0 / len(DAY_TYPES)] * len(DAY_TYPES)
    for _ in range(200):
        p = [sum(p[i] * TRANSITIONS[i][j] for i in range(len(p))) for j in range(len(p))]
    return tuple(p)


STATIONARY = _stationary()


def uniform(seed: int, *parts: object) -> float:
    """A reproducible draw in [0, 1) for ``seed`` and ``parts`` (stable across runs)."""
    key = "|".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64


def _pick(weights: tuple[float, ...], u: float) -> int:
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if u < acc:
            return i
    return len(weights) - 1


@functools.lru_cache(maxsize=256)
def day_type(seed: int, day: int) -> DayType:
    """The type of ``day`` (days since 1970-01-01 in the site's mean solar time)."""
    state = _pick(STATIONARY, uniform(seed, "start", day - LOOKBACK_DAYS))
    for d in range(day - LOOKBACK_DAYS + 1, day + 1):
        state = _pick(TRANSITIONS[state], uniform(seed, "step", d))
    return DAY_TYPES[state]


@functools.lru_cache(maxsize=256)
def day_mean(seed: int, day: int) -> float:
    kind = day_type(seed, day)
    return kind.mean_low + (kind.mean_high - kind.mean_low) * uniform(seed, "mean", day)


def value_noise(seed: int, period_s: float, t: float) -> float:
    """Smooth noise in -1..1: seeded knots every ``period_s``, smoothstep in between."""
    k = math.floor(t / period_s)
    f = t / period_s - k
    a = 2.0 * uniform(seed, "knot", period_s, k) - 1.0
    b = 2.0 * uniform(seed, "knot", period_s, k + 1) - 1.0
    return a + (b - a) * f * f * (3.0 - 2.0 * f)


def solar_day(epoch_s: float, longitude: float) -> int:
    """Days since 1970-01-01 in mean solar time at ``longitude`` (4 minutes a degree)."""
    return math.floor((epoch_s + longitude * 240.0) / 86400.0)


def clear_sky_index(seed: int, epoch_s: float, longitude: float) -> float:
    """kc at POSIX time ``epoch_s`` for a site at ``longitude``, within KC_MIN..KC_MAX."""
    day = solar_day(epoch_s, longitude)
    kind = day_type(seed, day)
    kc = day_mean(seed, day)
    if kind.slow_amplitude:
        kc += kind.slow_amplitude * value_noise(seed, SLOW_PERIOD_S, epoch_s)
    if kind.fast_amplitude:
        kc += kind.fast_amplitude * value_noise(seed, FAST_PERIOD_S, epoch_s)
    return min(max(kc, KC_MIN), KC_MAX)
