"""The load models: what a house draws at a given moment.

The daemon only needs :class:`LoadModel`; ``[meter] profile`` picks one (:func:`build`):

* ``household`` (:class:`meterd.household.Household`): one house following the BDEW H0
  standard load profile, with appliance events; a pure function of (meter id, seed,
  timestamp), so a replay gives what the live meter gave.
* ``random_walk`` (:class:`RandomWalk`): "random but continuous": each sample is a
  bounded step from the previous one, within 0-9000 W.  It carries state from sample to
  sample, so a replay does not reproduce a live run.
* ``uniform`` (:class:`Uniform`): each sample drawn independently in 0-9000 W, from a
  hash of (seed, meter id, timestamp), so it is a pure function as well.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from meterd.household import Household, seed_int, unit_hash

if TYPE_CHECKING:
    from meterd.settings import MeterSettings

MIN_W = 0.0
MAX_W = 9000.0
PROFILES = ("household", "random_walk", "uniform")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


class LoadModel(Protocol):
    """What meterd asks of a load model: the power a house draws at an instant."""

    def power_w(self, ts: datetime) -> float:
        """The power drawn at ``ts`` in W, within 0-9000, rounded to 0.1 W."""


class RandomWalk:
    """random_walk: each sample at most max_step W from the last, within 0-9000 W
    (stateful)."""

    def __init__(self, rng: random.Random, max_step_w: float = 300.0, start_w: float | None = None):
        self.rng = rng
        self.max_step_w = max_step_w
        self.last = start_w

    def power_w(self, ts: datetime) -> float:  # noqa: ARG002 - the walk ignores the time
        if self.last is None:
            value = self.rng.uniform(200.0, 2000.0)
        else:
            value = self.last + self.rng.uniform(-self.max_step_w, self.max_step_w)
            # reflect at the bounds so the walk does not stick to them
            if value < MIN_W:
                value = MIN_W + (MIN_W - value)
            elif value > MAX_W:
                value = MAX_W - (value - MAX_W)
        value = round(min(max(value, MIN_W), MAX_W), 1)
        self.last = value
        return value


class Uniform:
    """Each sample independent and uniform in 0-9000 W, the same for the same
    (seed, meter id, timestamp)."""

    def __init__(self, meter_id: str, seed: int):
        self.key = seed_int(seed, meter_id, "uniform") & ((1 << 64) - 1)

    def power_w(self, ts: datetime) -> float:
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return round(MAX_W * unit_hash(self.key, (ts - _EPOCH) // _ONE_US), 1)


def build(meter: MeterSettings) -> LoadModel:
    """The load model the ``[meter]`` section asks for.

    An empty seed gives ``random_walk`` and ``uniform`` a fresh random seed at every
    start; a ``household`` without a seed is determined by its meter id alone, so the
    house stays the same across restarts and replays.
    """
    seed = meter.seed
    if meter.profile == "household":
        return Household(meter.id, seed, annual_kwh=meter.annual_kwh, timezone=meter.timezone)
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "big")
    if meter.profile == "random_walk":
        return RandomWalk(random.Random(seed), max_step_w=meter.max_step)
    if meter.profile == "uniform":
        return Uniform(meter.id, seed)
    raise ValueError(f"unknown load profile {meter.profile!r}")
