"""Readers of the weather files users download for their site, standard library only:

- **PVGIS TMY CSV** (the ``tmy`` tool of PVGIS 5): ``Latitude (decimal degrees): …``,
  ``Longitude …``, ``Elevation (m): …``, optionally ``Irradiance Time Offset (h): …``, the
  table of the year chosen for each month, then
  ``time(UTC),T2m,RH,G(h),Gb(n),Gd(h),IR(h),WS10m,WD10m,SP`` and one line an hour
  (``20070101:0000,…``), then a legend.  Times are UTC; a record is the weather at its
  label plus the irradiance time offset.
- **EnergyPlus EPW**: ``LOCATION,city,state,country,source,WMO,latitude,longitude,
  time zone,elevation``, seven more header lines, then one line an hour: year, month,
  day, hour 1..24, minute, flags, dry bulb (field 7), …, GHI, DNI, DHI (fields 14-16), …,
  wind speed (field 22).  Hour *h* is the hour ending at *h*:00, local standard time.
  PVGIS writes its EPW files otherwise: the hours are UTC (though the time zone field
  names the site's), and a comment ``Irradiance Time Offset (h): −0.82`` says which
  instant of the hour, counted from its end, each record is; such a file is read so.
- **NREL TMY3 CSV**: ``USAF,"name",state,time zone,latitude,longitude,elevation``, a line
  of column names (``Date (MM/DD/YYYY)``, ``Time (HH:MM)``, ``GHI (W/m^2)``,
  ``DNI (W/m^2)``, ``DHI (W/m^2)``, ``Dry-bulb (C)``, ``Wspd (m/s)``, …), then one line an
  hour, labelled with the end of the hour (``01:00`` … ``24:00``) in local standard time.

The format is told by the file's first lines.  :func:`load` returns a
:class:`~pvsimd.weather_year.WeatherYear`; anything that cannot be read raises
:class:`WeatherFileError`, whose text names the file, the line and what is wrong.
Records of 29 February are left out (the year is one without it).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from pvsimd.weather_year import HOURS, WeatherYear, describe_hour, hour_of_year

MAX_IRRADIANCE = 2000.0  # W/m²: beyond any sun on Earth, even with cloud enhancement


class WeatherFileError(ValueError):
    """A weather file that cannot be used: ``<file>, line <n>: <problem>``."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        where = str(path) if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class Record:
    """One hour: its index in the year (:func:`hour_of_year`), the file's line, values."""

    hour: int
    line: int
    ghi: float
    dni: float
    dhi: float
    temp_air: float
    wind_speed: float


@dataclass(frozen=True)
class Header:
    kind: str
    latitude: float
    longitude: float
    elevation: float
    utc_offset_s: float
    record_offset_s: float


def parse_setting(text: str) -> WeatherYear | None:
    """The ``[pv] weather`` value: empty (the sky model), or the absolute path of a weather
    file, read at once (so ``--check-config`` and the start reject a bad one)."""
    if not text:
        return None
    if not text.startswith("/"):
        raise ValueError(f"must be the absolute path of a weather file, got {text!r}")
    return load(text)


def load(path: str | Path) -> WeatherYear:
    """Read a PVGIS TMY CSV, EPW or TMY3 CSV file into a weather year."""
    header, records = read_records(path)
    slots: list[Record | None] = [None] * HOURS
    for record in records:
        first = slots[record.hour]
        if first is not None:
            raise WeatherFileError(
                path,
                record.line,
                f"a second record for {describe_hour(record.hour)} (the first is on line "
                f"{first.line}); a weather file holds one year",
            )
        slots[record.hour] = record
    missing = [hour for hour, record in enumerate(slots) if record is None]
    if missing:
        raise WeatherFileError(
            path,
            None,
            f"no record for {describe_hour(missing[0])}"
            + (f" and {len(missing) - 1} more hours" if len(missing) > 1 else "")
            + f"; a weather file holds every hour of a year ({HOURS} records, 29 February "
            "optional)",
        )
    full: list[Record] = slots  # type: ignore[assignment]  # no None left
    return WeatherYear(
        source=str(path),
        kind=header.kind,
        latitude=header.latitude,
        longitude=header.longitude,
        elevation=header.elevation,
        utc_offset_s=header.utc_offset_s,
        record_offset_s=header.record_offset_s,
        ghi=tuple(r.ghi for r in full),
        dni=tuple(r.dni for r in full),
        dhi=tuple(r.dhi for r in full),
        temp_air=tuple(r.temp_air for r in full),
        wind_speed=tuple(r.wind_speed for r in full),
    )


def read_records(path: str | Path) -> tuple[Header, list[Record]]:
    """The file's header and its records in file order (29 February left out), without
    checking that they make a whole year."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise WeatherFileError(path, None, f"cannot read it: {exc.strerror or exc}") from None
    first = lines[0].lstrip("\ufeff") if lines else ""
    if first.startswith("Latitude"):
        return _pvgis(path, lines)
    if first.startswith("LOCATION,"):
        return _epw(path, lines)
    if len(lines) > 1 and lines[1].startswith("Date (MM/DD/YYYY)"):
        return _tmy3(path, lines)
    raise WeatherFileError(
        path,
        1,
        "not a weather file pvsimd reads: a PVGIS TMY CSV starts with 'Latitude (decimal "
        "degrees):', an EnergyPlus EPW with 'LOCATION,', an NREL TMY3 CSV has "
        "'Date (MM/DD/YYYY),Time (HH:MM),…' on its second line",
    )


# --- values -------------------------------------------------------------------------


def _number(path: str | Path, line: int, what: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise WeatherFileError(path, line, f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise WeatherFileError(path, line, f"{what} must be a finite number, got {text!r}")
    return value


def _in_range(
    path: str | Path, line: int, what: str, text: str, low: float, high: float, unit: str
) -> float:
    value = _number(path, line, what, text)
    if not low <= value <= high:
        raise WeatherFileError(path, line, f"{what} must be {low:g} to {high:g} {unit}, got {text}")
    return value


def _record(
    path: str | Path,
    line: int,
    hour: int,
    ghi: str,
    dni: str,
    dhi: str,
    temp_air: str,
    wind_speed: str,
) -> Record:
    return Record(
        hour,
        line,
        _in_range(path, line, "GHI", ghi, 0.0, MAX_IRRADIANCE, "W/m²"),
        _in_range(path, line, "DNI", dni, 0.0, MAX_IRRADIANCE, "W/m²"),
        _in_range(path, line, "DHI", dhi, 0.0, MAX_IRRADIANCE, "W/m²"),
        _in_range(path, line, "the air temperature", temp_air, -90.0, 70.0, "°C"),
        _in_range(path, line, "the wind speed", wind_speed, 0.0, 120.0, "m/s"),
    )


def _location(
    path: str | Path, line: int, latitude: str, longitude: str, elevation: str
) -> tuple[float, float, float]:
    return (
        _in_range(path, line, "the latitude", latitude, -90.0, 90.0, "degrees"),
        _in_range(path, line, "the longitude", longitude, -180.0, 180.0, "degrees"),
        _number(path, line, "the elevation", elevation),
    )


def _rows(lines: Sequence[str], start: int) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of the CSV lines from index ``start`` on."""
    for offset, fields in enumerate(csv.reader(lines[start:])):
        yield start + offset + 1, fields


def _column(path: str | Path, line: int, names: Sequence[str], name: str) -> int:
    try:
        return list(names).index(name)
    except ValueError:
        raise WeatherFileError(path, line, f"no column {name!r}") from None


# --- PVGIS TMY CSV --------------------------------------------------------------------


def _pvgis(path: str | Path, lines: Sequence[str]) -> tuple[Header, list[Record]]:
    values: dict[str, tuple[int, str]] = {}
    start = None
    for index, text in enumerate(lines):
        if text.startswith("time(UTC)"):
            start = index
            break
        key, sep, value = text.partition(":")
        if sep:
            values[key.strip()] = (index + 1, value.strip())
    if start is None:
        raise WeatherFileError(path, None, "no line of column names 'time(UTC),T2m,…'")

    def header_value(key: str) -> tuple[int, str]:
        if key not in values:
            raise WeatherFileError(path, None, f"no header line '{key}: …'")
        return values[key]

    line, latitude = header_value("Latitude (decimal degrees)")
    _, longitude = header_value("Longitude (decimal degrees)")
    _, elevation = header_value("Elevation (m)")
    lat, lon, elev = _location(path, line, latitude, longitude, elevation)
    offset_h = 0.0
    if "Irradiance Time Offset (h)" in values:
        line, text = values["Irradiance Time Offset (h)"]
        offset_h = _in_range(path, line, "the irradiance time offset", text, -1.0, 1.0, "h")

    names = [name.strip() for name in lines[start].split(",")]
    columns = [
        _column(path, start + 1, names, name)
        for name in ("time(UTC)", "G(h)", "Gb(n)", "Gd(h)", "T2m", "WS10m")
    ]
    records = []
    minute = None
    for line, fields in _rows(lines, start + 1):
        if not fields or not fields[0][:1].isdigit():
            break  # the legend after the data
        if len(fields) < len(names):
            raise WeatherFileError(path, line, f"{len(fields)} fields, expected {len(names)}")
        stamp = fields[columns[0]].strip()
        try:
            if len(stamp) != 13 or stamp[8] != ":":
                raise ValueError
            month, day = int(stamp[4:6]), int(stamp[6:8])
            hour, this_minute = int(stamp[9:11]), int(stamp[11:13])
            date(int(stamp[:4]), month, day)
            if not 0 <= hour < 24 or not 0 <= this_minute < 60:
                raise ValueError
        except ValueError:
            raise WeatherFileError(
                path, line, f"time(UTC) must be YYYYMMDD:HHMM, got {stamp!r}"
            ) from None
        if minute is None:
            minute = this_minute
        elif this_minute != minute:
            raise WeatherFileError(
                path, line, f"records at minute {this_minute:02d} and {minute:02d} of the hour"
            )
        if (month, day) == (2, 29):
            continue
        records.append(
            _record(
                path,
                line,
                hour_of_year(month, day, hour),
                *(fields[i] for i in columns[1:]),
            )
        )
    header = Header("PVGIS TMY", lat, lon, elev, 0.0, (minute or 0) * 60.0 + offset_h * 3600.0)
    return header, records


# --- EnergyPlus EPW -------------------------------------------------------------------

PVGIS_OFFSET = "Irradiance Time Offset (h)"
EPW_MISSING = {"GHI": 9999.0, "DNI": 9999.0, "DHI": 9999.0, "dry bulb": 99.9, "wind": 999.0}


def _epw(path: str | Path, lines: Sequence[str]) -> tuple[Header, list[Record]]:
    location = next(csv.reader(lines[:1]))
    if len(location) < 10:
        raise WeatherFileError(
            path,
            1,
            "LOCATION needs city, state, country, source, WMO, latitude, longitude, "
            "time zone, elevation",
        )
    lat, lon, elev = _location(path, 1, location[6], location[7], location[9])
    zone = _in_range(path, 1, "the time zone", location[8], -12.0, 14.0, "hours")
    kind, utc_offset_s, record_offset_s = "EPW", zone * 3600.0, 1800.0
    records = []
    for line, fields in _rows(lines, 1):
        if not fields or not fields[0].strip().lstrip("-").isdigit():
            text = ",".join(fields)
            if PVGIS_OFFSET in text:  # PVGIS's EPW: UTC, this instant from the hour's end
                offset = text.split(PVGIS_OFFSET, 1)[1].strip(" :,")
                offset_h = _in_range(path, line, "the irradiance time offset", offset, -1, 0, "h")
                kind, utc_offset_s, record_offset_s = "EPW (PVGIS)", 0.0, 3600 * (1 + offset_h)
            if fields and fields[0].strip().upper() == "DATA PERIODS" and len(fields) > 2:
                if fields[2].strip() not in ("1", ""):
                    raise WeatherFileError(
                        path,
                        line,
                        f"{fields[2].strip()} records an hour; pvsimd reads hourly EPW files",
                    )
            continue  # the header lines
        if len(fields) < 22:
            raise WeatherFileError(path, line, f"{len(fields)} fields, expected 35")
        try:
            month, day, hour = int(fields[1]), int(fields[2]), int(fields[3])
            if (month, day) == (2, 29):
                continue
            slot = hour_of_year(month, day, hour - 1)  # hour h ends at h:00
        except ValueError:
            raise WeatherFileError(
                path,
                line,
                f"month, day and hour (1-24) must name an hour of the year, got "
                f"{','.join(fields[1:4])!r}",
            ) from None
        wanted = {"dry bulb": 6, "GHI": 13, "DNI": 14, "DHI": 15, "wind": 21}
        for what, i in wanted.items():
            try:
                missing = float(fields[i]) >= EPW_MISSING[what]
            except ValueError:
                missing = False  # reported below
            if missing:
                raise WeatherFileError(path, line, f"the {what} value is missing ({fields[i]})")
        records.append(
            _record(path, line, slot, fields[13], fields[14], fields[15], fields[6], fields[21])
        )
    return Header(kind, lat, lon, elev, utc_offset_s, record_offset_s), records


# --- NREL TMY3 CSV --------------------------------------------------------------------


def _tmy3(path: str | Path, lines: Sequence[str]) -> tuple[Header, list[Record]]:
    meta = next(csv.reader(lines[:1]))
    if len(meta) < 7:
        raise WeatherFileError(
            path, 1, "needs USAF, name, state, time zone, latitude, longitude, elevation"
        )
    zone = _in_range(path, 1, "the time zone", meta[3], -12.0, 14.0, "hours")
    lat, lon, elev = _location(path, 1, meta[4], meta[5], meta[6])
    names = next(csv.reader(lines[1:2]))
    wanted = (
        "Date (MM/DD/YYYY)",
        "Time (HH:MM)",
        "GHI (W/m^2)",
        "DNI (W/m^2)",
        "DHI (W/m^2)",
        "Dry-bulb (C)",
        "Wspd (m/s)",
    )
    columns = [_column(path, 2, names, name) for name in wanted]
    records = []
    for line, fields in _rows(lines, 2):
        if not fields or not "".join(fields).strip():
            continue
        if len(fields) < len(names):
            raise WeatherFileError(path, line, f"{len(fields)} fields, expected {len(names)}")
        day_text, time_text = fields[columns[0]], fields[columns[1]]
        try:
            month, day, year = (int(part) for part in day_text.split("/"))
            hours, minutes = (int(part) for part in time_text.split(":"))
            if minutes != 0 or not 0 <= hours <= 24:
                raise ValueError
            labelled = date(year, month, day)
        except ValueError:
            raise WeatherFileError(
                path,
                line,
                f"date and time must be MM/DD/YYYY and HH:00 (01:00 to 24:00), got "
                f"{day_text!r}, {time_text!r}",
            ) from None
        # labelled with the hour's end: the record is the hour before it (00:00 is the
        # previous day's last hour)
        start_day = labelled - timedelta(days=1) if hours == 0 else labelled
        if (start_day.month, start_day.day) == (2, 29):
            continue
        records.append(
            _record(
                path,
                line,
                hour_of_year(start_day.month, start_day.day, (hours - 1) % 24),
                *(fields[i] for i in columns[2:]),
            )
        )
    return Header("TMY3", lat, lon, elev, zone * 3600.0, 1800.0), records
