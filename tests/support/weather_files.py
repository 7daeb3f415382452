"""Writers of weather files in the three formats pvsimd reads (PVGIS TMY CSV, EnergyPlus
EPW, NREL TMY3 CSV), for tests: the same hours written in each format, each with its own
time labelling, so that the readers can be checked against each other and against pvlib's.

(``write_epw(..., pvgis=True)`` writes an EPW file the way PVGIS does: in UTC, with the
irradiance time offset in its comments.)

An :class:`Hour` is one hourly record in the site's local standard time, ``hour`` being
the hour it *starts* (0..23).  TMY3 and EPW label it with the hour's end in local
standard time; PVGIS with the hour's start in UTC and ``Irradiance Time Offset (h): 0.5``,
so that each record stands for the same instant (the middle of the hour) in all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class Site:
    name: str
    latitude: float
    longitude: float
    elevation: float
    timezone: int  # hours east of UTC, of the local standard time


@dataclass(frozen=True)
class Hour:
    month: int
    day: int
    hour: int  # local standard time, the start of the hour
    ghi: float
    dni: float
    dhi: float
    temp_air: float
    wind_speed: float


def year_hours() -> list[tuple[int, int, int]]:
    """(month, day, hour) of every hour of a year without 29 February, in order."""
    return [
        (month, day, hour)
        for month in range(1, 13)
        for day in range(1, DAYS_IN_MONTH[month - 1] + 1)
        for hour in range(24)
    ]


def _next_day(month: int, day: int) -> tuple[int, int]:
    if day < DAYS_IN_MONTH[month - 1]:
        return month, day + 1
    return (month % 12) + 1, 1


def _previous_day(month: int, day: int) -> tuple[int, int]:
    if day > 1:
        return month, day - 1
    month = 12 if month == 1 else month - 1
    return month, DAYS_IN_MONTH[month - 1]


def _fmt(value: float) -> str:
    return f"{value:g}"


def write_tmy3(path: Path, site: Site, hours: Sequence[Hour], year: int = 1990) -> None:
    """NREL TMY3 CSV: hour-ending labels (01:00 .. 24:00) in local standard time."""
    lines = [
        f'999999,"{site.name}",XX,{site.timezone:.1f},{site.latitude:.3f},'
        f"{site.longitude:.3f},{site.elevation:g}",
        "Date (MM/DD/YYYY),Time (HH:MM),ETR (W/m^2),ETRN (W/m^2),GHI (W/m^2),DNI (W/m^2),"
        "DHI (W/m^2),Dry-bulb (C),Wspd (m/s),Alb (unitless)",
    ]
    for h in hours:
        lines.append(
            f"{h.month:02d}/{h.day:02d}/{year},{h.hour + 1:02d}:00,0,0,{_fmt(h.ghi)},"
            f"{_fmt(h.dni)},{_fmt(h.dhi)},{_fmt(h.temp_air)},{_fmt(h.wind_speed)},0.2"
        )
    path.write_text("\n".join(lines) + "\n")


def in_utc(site: Site, hours: Sequence[Hour]) -> list[tuple[tuple[int, int, int], Hour]]:
    """The hours keyed by the (month, day, hour) their start has in UTC, in UTC order."""
    utc = []
    for h in hours:
        month, day, hour = h.month, h.day, h.hour - site.timezone
        while hour >= 24:
            hour -= 24
            month, day = _next_day(month, day)
        while hour < 0:
            hour += 24
            month, day = _previous_day(month, day)
        utc.append(((month, day, hour), h))
    utc.sort(key=lambda item: item[0])
    return utc


def write_epw(
    path: Path, site: Site, hours: Sequence[Hour], year: int = 1990, pvgis: bool = False
) -> None:
    """EnergyPlus EPW: hour 1..24 ending at that hour, local standard time.

    ``pvgis``: as PVGIS writes EPW files — the hours in UTC (the time zone field still the
    site's), ``COMMENTS 2,Irradiance Time Offset (h):-0.5``: each record is the instant
    half an hour before the end of its (UTC) hour."""
    rows = in_utc(site, hours) if pvgis else [((h.month, h.day, h.hour), h) for h in hours]
    lines = [
        f"LOCATION,{site.name},XX,XXX,test,999999,{site.latitude:.3f},{site.longitude:.3f},"
        f"{site.timezone:.1f},{site.elevation:g}",
        "DESIGN CONDITIONS,0",
        "TYPICAL/EXTREME PERIODS,0",
        "GROUND TEMPERATURES,0",
        "HOLIDAYS/DAYLIGHT SAVINGS,No,0,0,0",
        "COMMENTS 1,written by tests/support/weather_files.py",
        "COMMENTS 2,Irradiance Time Offset (h):-0.5000" if pvgis else "COMMENTS 2,",
        "DATA PERIODS,1,1,Data,Sunday, 1/ 1,12/31",
    ]
    for (month, day, hour), h in rows:
        fields = [
            str(year),
            str(month),
            str(day),
            str(hour + 1),
            "60",
            "?9?9?9?9E0?9?9?9?9?9?9?9?9?9?9?9?9?9?9?9*9*9?9?9?9",
            _fmt(h.temp_air),  # 7 dry bulb
            "0.0",  # dew point
            "50",  # relative humidity
            "101325",  # pressure
            "9999",  # extraterrestrial horizontal
            "9999",  # extraterrestrial normal
            "9999",  # horizontal infrared
            _fmt(h.ghi),  # 14
            _fmt(h.dni),  # 15
            _fmt(h.dhi),  # 16
            "999999",
            "999999",
            "999999",
            "9999",
            "0",  # wind direction
            _fmt(h.wind_speed),  # 22
            "99",
            "99",
            "9999",
            "99999",
            "9",
            "999999999",
            "999",
            "0.999",
            "999",
            "99",
            "999",
            "999",
            "99",
        ]
        lines.append(",".join(fields))
    path.write_text("\r\n".join(lines) + "\r\n")


def write_pvgis(path: Path, site: Site, hours: Sequence[Hour], year: int = 1990) -> None:
    """PVGIS TMY CSV: UTC labels of the hour's start, ``Irradiance Time Offset (h): 0.5``
    (each record is the middle of its hour), rows from 1 January 00:00 UTC on."""
    utc = in_utc(site, hours)
    lines = [
        f"Latitude (decimal degrees): {site.latitude:.3f}",
        f"Longitude (decimal degrees): {site.longitude:.3f}",
        f"Elevation (m): {site.elevation:.1f}",
        "Irradiance Time Offset (h): 0.5000",
        "month,year",
        *(f"{month},{year}" for month in range(1, 13)),
        "time(UTC),T2m,RH,G(h),Gb(n),Gd(h),IR(h),WS10m,WD10m,SP",
    ]
    for (month, day, hour), h in utc:
        lines.append(
            f"{year}{month:02d}{day:02d}:{hour:02d}00,{_fmt(h.temp_air)},50.0,{_fmt(h.ghi)},"
            f"{_fmt(h.dni)},{_fmt(h.dhi)},300.0,{_fmt(h.wind_speed)},180.0,101325.0"
        )
    lines += [
        "",
        "T2m: 2-m air temperature (degree Celsius)",
        "RH: relative humidity (%)",
        "G(h): Global irradiance on the horizontal plane (W/m2)",
        "Gb(n): Beam/direct irradiance on a plane always normal to sun rays (W/m2)",
        "Gd(h): Diffuse irradiance on the horizontal plane (W/m2)",
        "IR(h): Surface infrared (thermal) irradiance on a horizontal plane (W/m2)",
        "WS10m: 10-m total wind speed (m/s)",
        "WD10m: 10-m wind direction (0 = North, 90 = East) (degree)",
        "SP: Surface (air) pressure (Pa)",
        "",
        "PVGIS (c) European Union, 2001-2024",
    ]
    path.write_text("\r\n".join(lines) + "\r\n")


WRITERS = {"tmy3": write_tmy3, "epw": write_epw, "pvgis": write_pvgis}
SUFFIXES = {"tmy3": ".csv", "epw": ".epw", "pvgis": ".csv"}
