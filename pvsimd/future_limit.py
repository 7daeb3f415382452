"""Readings from the future: the limit after which pvsimd refuses a reading's timestamp.

A meter whose clock runs ahead (a board without a real-time clock, a bad NTP step) must
not write tomorrow's day file: pvsimd dead-letters a reading whose ``ts`` lies more than
``[security] future_tolerance`` ahead of its own clock, with the reason ``future``.
Old readings (replays, backlogs) stay welcome.

pvsimd's own clock may be the wrong one: while it says a time before the package's build
date (:mod:`pvsim.build_info`) it cannot be trusted, and nothing is refused for being in
the future until it can.  The clock is injected (``now_us``), so the rules are tested
without waiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pvsim import build_info, wire

log = logging.getLogger(__name__)

NO_LIMIT_US = 2**63  # the check is off: this machine's clock is before the build date


def wall_clock_us() -> int:
    return round(time.time() * 1_000_000)


class FutureLimit:
    """The newest timestamp (epoch µs) a reading may have, as of this machine's clock.

    :attr:`limit_us` is the value of the last :meth:`update` (each tick calls it); a
    reading past it is checked again against the clock now (:meth:`exceeded`), so that a
    reading is never refused on a limit a tick old."""

    def __init__(
        self,
        tolerance_s: float,
        build_us: int | None,
        now_us: Callable[[], int] = wall_clock_us,
    ):
        self.tolerance_us = round(tolerance_s * 1_000_000)
        self.build_us = build_us
        self.now_us = now_us
        self.clock_untrusted = False
        self.limit_us = NO_LIMIT_US
        self.update()

    @classmethod
    def from_build(cls, tolerance_s: float) -> FutureLimit:
        """With the installed package's build date as the floor of a trustworthy clock."""
        build = build_info.build_epoch()
        return cls(tolerance_s, None if build is None else build * 1_000_000)

    def update(self) -> int:
        """The limit as of now; logs once when the clock becomes untrusted or trusted."""
        now_us = self.now_us()
        if self.build_us is not None and now_us < self.build_us:
            if not self.clock_untrusted:
                self.clock_untrusted = True
                log.warning(
                    "this machine's clock says %s, before the build date %s: readings are "
                    "not checked for being in the future until it is right",
                    wire.format_ts(wire.from_epoch_us(now_us)),
                    build_info.build_date_text(),
                )
            self.limit_us = NO_LIMIT_US
        else:
            if self.clock_untrusted:
                self.clock_untrusted = False
                log.info("this machine's clock is past the build date: future readings refused")
            self.limit_us = now_us + self.tolerance_us
        return self.limit_us

    def exceeded(self, ts_us: int) -> str | None:
        """Why a reading at ``ts_us`` is in the future, or None when it is not."""
        if ts_us <= self.limit_us or ts_us <= self.update():
            return None
        ahead = (ts_us - (self.limit_us - self.tolerance_us)) / 1_000_000
        return (
            f"future: ts {wire.format_ts(wire.from_epoch_us(ts_us))} is {ahead:.0f} s ahead "
            f"of this machine's clock (future_tolerance {self.tolerance_us / 1e6:g} s)"
        )
