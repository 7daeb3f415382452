"""A typical weather year: hourly irradiance, air temperature and wind speed, read from a
weather file (:mod:`pvsimd.weather_files`), and the weather it gives at any instant.

A weather year holds one record for each of the 8 760 hours of a year without 29
February.  Every reading takes the weather of the same month, day and time of day in that
year, whatever its own year: 29 February takes 28 February's.  The time of day is that
of the file's clock: local standard time (no daylight saving) for TMY3 and EPW files, UTC
for PVGIS.

Each record stands for one instant in its hour, :attr:`WeatherYear.record_offset_s`
after the hour's start: the middle of the hour (1 800 s) for the hourly means of TMY3 and
EPW, whose records are labelled with the *end* of their hour; for PVGIS the instant of
its label plus the file's ``Irradiance Time Offset`` when it gives one (the time of the
satellite image).  Between two such instants every quantity is interpolated linearly;
the year wraps around from 31 December to 1 January.  So at a record's instant the
weather is exactly the record's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

HOURS = 8760  # a year without 29 February
# days before each month in a year without 29 February
_DAYS_BEFORE_MONTH = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
EARTH_RADIUS_KM = 6371.0


class Weather(NamedTuple):
    """Horizontal irradiance in W/m², air temperature in °C, wind speed in m/s."""

    ghi: float
    dni: float
    dhi: float
    temp_air: float
    wind_speed: float


def hour_of_year(month: int, day: int, hour: int) -> int:
    """The index of the hour starting at ``hour`` o'clock on ``month``/``day`` (0..8759);
    ValueError for a day that is not in a year without 29 February."""
    if not 1 <= month <= 12 or not 1 <= day <= _DAYS_IN_MONTH[month - 1] or not 0 <= hour < 24:
        raise ValueError(f"no hour {hour:02d}:00 on {month:02d}-{day:02d} in a year")
    return (_DAYS_BEFORE_MONTH[month - 1] + day - 1) * 24 + hour


def month_day_hour(index: int) -> tuple[int, int, int]:
    """The month, day and starting hour of an hour of the year (0..8759)."""
    day, hour = divmod(index, 24)
    month = max(m for m in range(12) if _DAYS_BEFORE_MONTH[m] <= day)
    return month + 1, day - _DAYS_BEFORE_MONTH[month] + 1, hour


def describe_hour(index: int) -> str:
    """``MM-DD HH:00`` of an hour of the year."""
    month, day, hour = month_day_hour(index)
    return f"{month:02d}-{day:02d} {hour:02d}:00"


@dataclass(frozen=True)
class WeatherYear:
    """A year of hourly weather records (index: :func:`hour_of_year`)."""

    source: str  # the file it came from
    kind: str  # "PVGIS TMY", "EPW" or "TMY3"
    latitude: float
    longitude: float
    elevation: float
    utc_offset_s: float  # the file's clock: UTC + this
    record_offset_s: float  # each record's instant after the start of its hour
    ghi: tuple[float, ...]
    dni: tuple[float, ...]
    dhi: tuple[float, ...]
    temp_air: tuple[float, ...]
    wind_speed: tuple[float, ...]

    def __post_init__(self) -> None:
        columns = (self.ghi, self.dni, self.dhi, self.temp_air, self.wind_speed)
        if any(len(column) != HOURS for column in columns):
            raise ValueError(f"a weather year holds {HOURS} hourly records")

    def position(self, epoch_s: float) -> float:
        """Hours from the instant of the year's first record to the reading's month, day
        and time of day on the file's clock (0 ≤ result < 8760)."""
        local = epoch_s + self.utc_offset_s
        days = math.floor(local / 86400.0)
        seconds = local - days * 86400.0
        day = date.fromordinal(_EPOCH_ORDINAL + days)
        month, day_of_month = day.month, min(day.day, 28) if day.month == 2 else day.day
        since_new_year = (_DAYS_BEFORE_MONTH[month - 1] + day_of_month - 1) * 86400.0 + seconds
        return ((since_new_year - self.record_offset_s) / 3600.0) % HOURS

    def at(self, epoch_s: float) -> Weather:
        """The weather at POSIX time ``epoch_s``, interpolated between the two records
        around the same month, day and time of day in this year."""
        position = self.position(epoch_s)
        i = int(position)
        if i >= HOURS:  # a position a rounding error below 8760
            i = HOURS - 1
        f = position - i
        j = i + 1 if i + 1 < HOURS else 0
        g = 1.0 - f
        return Weather(
            self.ghi[i] * g + self.ghi[j] * f,
            self.dni[i] * g + self.dni[j] * f,
            self.dhi[i] * g + self.dhi[j] * f,
            self.temp_air[i] * g + self.temp_air[j] * f,
            self.wind_speed[i] * g + self.wind_speed[j] * f,
        )

    def dark_days(self) -> list[str]:
        """``MM-DD`` of the days without any light in the file (all 24 records' GHI 0)."""
        return [
            describe_hour(day * 24)[:5]
            for day in range(HOURS // 24)
            if not any(self.ghi[day * 24 : day * 24 + 24])
        ]

    def distance_km(self, latitude: float, longitude: float) -> float:
        """Great-circle distance from the file's location (haversine)."""
        phi1, phi2 = math.radians(self.latitude), math.radians(latitude)
        dphi = phi2 - phi1
        dlambda = math.radians(longitude - self.longitude)
        a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
        return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))

    def describe(self) -> str:
        """One line for the log, STATUS and ``--check-config``."""
        zone = "UTC" if self.utc_offset_s == 0 else f"UTC{self.utc_offset_s / 3600:+g} h"
        return (
            f"{self.source} ({self.kind}, {self.latitude:.3f}, {self.longitude:.3f}, "
            f"{self.elevation:g} m; {zone})"
        )
