"""The household load model: what a house draws at a given moment.

The daemon only needs :class:`LoadModel`; :class:`RandomWalk` is the "random but
continuous" model: each sample is a bounded step from the previous one, within 0-9000 W.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Protocol

MIN_W = 0.0
MAX_W = 9000.0


class LoadModel(Protocol):
    def power_w(self, ts: datetime) -> float:
        """The power drawn at ``ts`` in W, within 0-9000, rounded to 0.1 W."""


class RandomWalk:
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
