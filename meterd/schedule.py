"""The drift-free sampling schedule: the k-th sample is due at k × interval since the epoch.

Times are integer microseconds, so fractional intervals never accumulate rounding error
and a restart continues on the same grid (a day at 10 s holds exactly 8 640 ticks).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """The tick grid: tick n is at n × interval since the epoch."""

    interval_us: int

    @classmethod
    def every(cls, seconds: float) -> Schedule:
        us = round(seconds * 1_000_000)
        if us <= 0:
            raise ValueError("interval must be positive")
        return cls(us)

    @property
    def tolerance_us(self) -> int:
        """How late a tick may be and still be sampled: one interval, at least 2 s."""
        return max(self.interval_us, 2_000_000)

    def first_at_or_after(self, now_us: int) -> int:
        """Index of the first tick at or after ``now_us``."""
        return -(-now_us // self.interval_us)

    def time_of(self, index: int) -> int:
        return index * self.interval_us

    def catch_up(self, index: int, now_us: int) -> tuple[int, int]:
        """(tick to sample now, ticks skipped).

        A late tick is still sampled (with its own timestamp) while it is at most
        :meth:`tolerance_us` late, so a slow disk or a busy moment loses nothing; after a
        longer gap (a suspended machine, a stopped process) the missed ticks are skipped.
        """
        due = self.time_of(index)
        if now_us - due <= self.tolerance_us:
            return index, 0
        current = now_us // self.interval_us
        return current, current - index
