"""What the sampler knows about the wall clock: whether it can be trusted, and its steps.

No I/O: the sampler hands in what the clocks say (epoch and monotonic microseconds) and
acts on the answers.

* **Trust.** A clock earlier than the *floor* is wrong: the floor is the package's
  build date (:mod:`pvsim.build_info`) or the newest reading already in the spool,
  whichever is later.  Until the clock reaches it the sampler waits
  (:attr:`ClockWatch.state` ``waiting``): a board without a real-time clock boots in
  1970, or at the time it was last shut down, until NTP steps it.
* **Steps.** Between two looks the wall clock moves as the monotonic clock does, give or
  take a slew (NTP slews at most 500 ppm); a difference beyond that, and beyond
  :data:`STEP_US`, is a step (:meth:`ClockWatch.step`).  A step forward leaves ticks
  missed (counted, never back-filled); after a step back the sampler follows the new
  time's grid and skips the ticks whose time it already recorded (state ``behind``
  while it does).
"""

from __future__ import annotations

from enum import StrEnum

STEP_US = 1_000_000  # a jump of the wall clock against the monotonic one of 1 s or more
SLEW_PPM = 500  # what a slewing NTP client changes at most, per elapsed time


class ClockState(StrEnum):
    """Where the sampler stands with the wall clock."""

    OK = "ok"
    WAITING = "waiting"  # earlier than the floor: the sampler has not started
    BEHIND = "behind"  # stepped back: ticks already recorded are skipped


class ClockWatch:
    """The trust floor, the state and the steps of the wall clock (module docstring)."""

    def __init__(self, floor_us: int | None = None, floor_source: str = "") -> None:
        self.floor_us = floor_us
        self.floor_source = floor_source
        self.state = ClockState.OK
        self.steps_forward = 0
        self.steps_back = 0
        self._offset_us: int | None = None  # wall − monotonic at the last look
        self._mono_us = 0

    def raise_floor(self, floor_us: int | None, source: str) -> None:
        """A later floor (e.g. the newest reading of the spool) replaces an earlier one."""
        if floor_us is not None and (self.floor_us is None or floor_us > self.floor_us):
            self.floor_us, self.floor_source = floor_us, source

    def trusted(self, wall_us: int) -> bool:
        """Whether the wall clock has reached the floor."""
        return self.floor_us is None or wall_us >= self.floor_us

    def step(self, wall_us: int, mono_us: int) -> int:
        """How far the wall clock stepped since the last look (µs, negative: back), or 0."""
        offset = wall_us - mono_us
        last, self._offset_us = self._offset_us, offset
        elapsed, self._mono_us = mono_us - self._mono_us, mono_us
        if last is None:
            return 0
        jump = offset - last
        if abs(jump) < STEP_US + elapsed * SLEW_PPM // 1_000_000:
            return 0
        if jump > 0:
            self.steps_forward += 1
        else:
            self.steps_back += 1
        return jump
