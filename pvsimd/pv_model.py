"""The PV model: the power a PV system at the site produces at a given moment.

The daemon only needs :class:`PvModel`.  :class:`DayCurve` is the simple model: a smooth
bell over the day in mean solar time at the site's longitude, zero at night (before 06:00
and after 21:00 solar time), peaking at 3.3 kW at 13:30 solar time.  It never exceeds
:data:`MAX_W`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

MAX_W = 4000.0


class PvModel(Protocol):
    def power_w(self, ts: datetime) -> float:
        """PV output in W at ``ts`` (aware), within 0..MAX_W, rounded to 0.1 W."""


@dataclass(frozen=True)
class DayCurve:
    longitude: float
    peak_w: float = 3300.0
    sunrise_h: float = 6.0
    sunset_h: float = 21.0

    def solar_hour(self, ts: datetime) -> float:
        """Mean solar time in hours: UTC shifted by 4 minutes per degree of longitude."""
        seconds = ts.timestamp() + self.longitude * 240.0
        return (seconds % 86400.0) / 3600.0

    def power_w(self, ts: datetime) -> float:
        hour = self.solar_hour(ts)
        if not self.sunrise_h < hour < self.sunset_h:
            return 0.0
        phase = (hour - self.sunrise_h) / (self.sunset_h - self.sunrise_h)
        return round(min(self.peak_w * math.sin(math.pi * phase) ** 2, MAX_W), 1)
