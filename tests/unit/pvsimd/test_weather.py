"""[pv] weather: the readers of PVGIS TMY CSV, EPW and TMY3 CSV files, the weather year
they make, and what pvsimd does with it (standard library only; tests/validation compares
with pvlib reading the same files).

The samples in tests/unit/pvsimd/weather/ are three days of Greensboro's NREL TMY3 file
and the same hours written as EPW and PVGIS files (see the README there); the whole
years these tests need are written into a temporary directory by
tests/support/weather_files.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from pvsim import config as c
from pvsim.notify import Notifier
from pvsim.signals import Signals
from pvsimd import weather_files
from pvsimd.clearsky import Irradiance
from pvsimd.cli import main as pvsimd_main
from pvsimd.pv_model import PvParameters, PvSystem
from pvsimd.service import PvSimDaemon
from pvsimd.settings import SCHEMA
from pvsimd.weather_year import HOURS, Weather, WeatherYear, hour_of_year, month_day_hour
from tests.support.weather_files import WRITERS, Hour, Site, write_epw, year_hours

SAMPLES = Path(__file__).parent / "weather"
SAMPLE_FILES = {
    "tmy3": SAMPLES / "greensboro-tmy3.csv",
    "epw": SAMPLES / "greensboro.epw",
    "pvgis": SAMPLES / "greensboro-pvgis.csv",
}
GREENSBORO = Site("GREENSBORO", 36.1, -79.95, 273.0, -5)
EST = timedelta(hours=-5)


def utc_hour_of_instant(header: weather_files.Header, record: weather_files.Record) -> float:
    """Hours since 1 January 00:00 UTC of the instant a record stands for."""
    hours = record.hour + (header.record_offset_s - header.utc_offset_s) / 3600.0
    return hours % HOURS


# --- the samples: real data, three labellings -------------------------------------------


def test_the_three_formats_give_the_same_hours_at_the_same_instants():
    read = {kind: weather_files.read_records(path) for kind, path in SAMPLE_FILES.items()}
    by_instant = {
        kind: {
            utc_hour_of_instant(header, r): (r.ghi, r.dni, r.dhi, r.temp_air, r.wind_speed)
            for r in records
        }
        for kind, (header, records) in read.items()
    }
    assert len(by_instant["tmy3"]) == 72
    assert by_instant["epw"] == by_instant["tmy3"]
    assert by_instant["pvgis"] == by_instant["tmy3"]
    # the PVGIS file is in UTC: its first line is 31 December 19:00 local standard time
    header, records = read["pvgis"]
    assert (header.kind, header.utc_offset_s, header.record_offset_s) == ("PVGIS TMY", 0, 1800)
    assert month_day_hour(records[0].hour) == (1, 1, 0)


def test_tmy3_records_are_labelled_with_the_end_of_their_hour_in_standard_time():
    header, records = weather_files.read_records(SAMPLE_FILES["tmy3"])
    assert (header.kind, header.latitude, header.longitude, header.elevation) == (
        "TMY3",
        36.1,
        -79.95,
        273.0,
    )
    assert (header.utc_offset_s, header.record_offset_s) == (-5 * 3600, 1800)
    # line 3 is "01/01/1988,01:00": the hour from midnight to 1 am
    assert (records[0].line, month_day_hour(records[0].hour)) == (3, (1, 1, 0))
    # "06/21/1989,13:00,1287,1322,745,…,380,…,374,…,27.2,…,2.6": the hour from noon to 1 pm
    noon = next(r for r in records if r.hour == hour_of_year(6, 21, 12))
    assert (noon.ghi, noon.dni, noon.dhi, noon.temp_air, noon.wind_speed) == (
        745,
        380,
        374,
        27.2,
        2.6,
    )
    # "…,24:00" is the last hour of its own day
    assert month_day_hour(records[23].hour) == (1, 1, 23)


def test_epw_hour_1_is_the_hour_ending_at_1_am():
    header, records = weather_files.read_records(SAMPLE_FILES["epw"])
    assert (header.kind, header.utc_offset_s, header.record_offset_s) == ("EPW", -18000, 1800)
    assert records[0].line == 9  # after the eight header lines
    assert month_day_hour(records[0].hour) == (1, 1, 0)


# --- a whole year ----------------------------------------------------------------------


def synthetic_hours() -> list[Hour]:
    """A year in which every hour's values tell which hour it is."""
    return [
        Hour(
            month,
            day,
            hour,
            ghi=float(k % 997),
            dni=float(k % 991),
            dhi=float(k % 983) / 2,
            temp_air=-20.0 + k % 50,
            wind_speed=(k % 13) / 2,
        )
        for k, (month, day, hour) in enumerate(year_hours())
    ]


def record_weather(k: int) -> Weather:
    return Weather(float(k % 997), float(k % 991), float(k % 983) / 2, -20.0 + k % 50, (k % 13) / 2)


@pytest.fixture(scope="module")
def year_files(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("weather")
    hours = synthetic_hours()
    paths = {}
    for kind, write in WRITERS.items():
        paths[kind] = directory / f"year-{kind}.{'epw' if kind == 'epw' else 'csv'}"
        write(paths[kind], GREENSBORO, hours)
    paths["epw-pvgis"] = directory / "year-pvgis.epw"  # PVGIS's own EPW: UTC hours
    write_epw(paths["epw-pvgis"], GREENSBORO, hours, pvgis=True)
    return paths


def middle_of_hour(k: int, year: int = 2026) -> datetime:
    """The UTC instant of the middle of hour ``k`` of the year in Greensboro's EST."""
    month, day, hour = month_day_hour(k)
    local = datetime(year, month, day, hour, 30)
    return (local - EST).replace(tzinfo=UTC)


@pytest.mark.parametrize("kind", ["tmy3", "epw", "pvgis", "epw-pvgis"])
def test_at_the_middle_of_an_hour_the_weather_is_that_hours_record(year_files, kind):
    year = weather_files.load(year_files[kind])
    for k in (0, 1, 12, 4000, 8759):
        assert year.at(middle_of_hour(k).timestamp()) == pytest.approx(record_weather(k)), k


@pytest.mark.parametrize("kind", ["tmy3", "epw", "pvgis", "epw-pvgis"])
def test_between_two_records_the_weather_is_interpolated(year_files, kind):
    year = weather_files.load(year_files[kind])
    k = hour_of_year(6, 21, 12)
    quarter = middle_of_hour(k) + timedelta(minutes=15)
    expected = [
        0.75 * a + 0.25 * b for a, b in zip(record_weather(k), record_weather(k + 1), strict=True)
    ]
    assert list(year.at(quarter.timestamp())) == pytest.approx(expected)
    # from 31 December's last hour to 1 January's first
    wrap = middle_of_hour(8759) + timedelta(minutes=30)
    expected = [(a + b) / 2 for a, b in zip(record_weather(8759), record_weather(0), strict=True)]
    assert list(year.at(wrap.timestamp())) == pytest.approx(expected)


def test_any_year_takes_the_same_month_day_and_time_and_29_february_takes_28(year_files):
    year = weather_files.load(year_files["tmy3"])
    k = hour_of_year(3, 14, 9)
    for y in (1999, 2026, 2031, 2100):
        assert year.at(middle_of_hour(k, y).timestamp()) == pytest.approx(record_weather(k))
    leap_day = datetime(2028, 2, 29, 13, 30) - EST
    feb_28 = hour_of_year(2, 28, 13)
    assert year.at(leap_day.replace(tzinfo=UTC).timestamp()) == pytest.approx(
        record_weather(feb_28)
    )
    march_1 = datetime(2028, 3, 1, 13, 30) - EST
    assert year.at(march_1.replace(tzinfo=UTC).timestamp()) == pytest.approx(
        record_weather(hour_of_year(3, 1, 13))
    )


def test_the_three_formats_give_the_same_weather_at_every_instant(year_files):
    years = {kind: weather_files.load(path) for kind, path in year_files.items()}
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    for step in range(0, 366 * 86400, 86400 // 7 + 613):  # all times of day over a year
        values = {kind: year.at(start + step) for kind, year in years.items()}
        for kind in ("epw", "pvgis", "epw-pvgis"):
            assert values[kind] == pytest.approx(values["tmy3"]), kind


def test_a_leap_year_file_drops_29_february(tmp_path):
    hours = synthetic_hours()
    leap = [Hour(2, 29, h, 1.0, 1.0, 1.0, 1.0, 1.0) for h in range(24)]
    at = hours.index(next(h for h in hours if (h.month, h.day) == (3, 1)))
    path = tmp_path / "leap.csv"
    WRITERS["tmy3"](path, GREENSBORO, hours[:at] + leap + hours[at:], year=1988)
    year = weather_files.load(path)
    assert year.ghi[hour_of_year(3, 1, 0)] == record_weather(hour_of_year(3, 1, 0)).ghi


# --- the PV system in a weather year --------------------------------------------------


def test_pv_power_takes_the_files_light_temperature_and_wind(year_files):
    params = PvParameters(GREENSBORO.latitude, GREENSBORO.longitude, altitude=273.0)
    year = weather_files.load(year_files["epw"])
    model = PvSystem(params, year)
    noon = middle_of_hour(hour_of_year(6, 21, 12))
    w = year.at(noon.timestamp())
    sun = model.sun(noon.timestamp())
    light = Irradiance(w.ghi, w.dni, w.dhi)
    expected = model.array_power_w(sun, light, w.temp_air, w.wind_speed)
    assert model.power_w(noon) == round(expected, 1)
    # warmer air and less wind: a hotter module gives less
    hotter = model.array_power_w(sun, light, w.temp_air + 20, 0.0)
    assert hotter < expected
    midnight = middle_of_hour(hour_of_year(6, 21, 0))
    assert year.at(midnight.timestamp()).ghi > 0  # the synthetic year has light at night …
    assert model.power_w(midnight) == 0.0  # … but the sun is down


def test_a_real_summer_day_in_greensboro(tmp_path):
    """The sample's 21 June: hour by hour what the TMY3 file says, smooth in between."""
    header, records = weather_files.read_records(SAMPLE_FILES["tmy3"])
    hours = [
        Hour(*month_day_hour(r.hour), r.ghi, r.dni, r.dhi, r.temp_air, r.wind_speed)
        for r in records
    ]
    june = {h.hour: h for h in hours if (h.month, h.day) == (6, 21)}
    full = [  # every day of the year like 21 June
        dataclasses.replace(june[hour], month=month, day=day) for month, day, hour in year_hours()
    ]
    path = tmp_path / "june.csv"
    WRITERS["tmy3"](path, GREENSBORO, full)
    model = PvSystem(
        PvParameters(GREENSBORO.latitude, GREENSBORO.longitude, altitude=273.0),
        weather_files.load(path),
    )
    start = datetime(2026, 6, 21, 5, tzinfo=UTC)  # midnight EST
    values = [model.power_w(start + timedelta(minutes=m)) for m in range(1440)]
    assert max(abs(b - a) for a, b in pairwise(values)) < 100.0  # no jumps
    energy_kwh = sum(values) / 60 / 1000
    assert 15.0 < energy_kwh < 30.0
    assert values[0] == values[-1] == 0.0


# --- the setting, its errors and where it is named ------------------------------------


def write_config(tmp_path: Path, weather: str, latitude: float = 36.1, **pv: str) -> Path:
    path = tmp_path / "pvsimd.ini"
    extra = "".join(f"{k} = {v}\n" for k, v in pv.items())
    path.write_text(
        f"[site]\nlatitude = {latitude}\nlongitude = -79.95\ntimezone = America/New_York\n"
        f"[pv]\nweather = {weather}\n{extra}"
        f"[output]\ndirectory = {tmp_path / 'csv'}\nfsync = off\n"
        "[security]\nverify_sender = no\n"
    )
    return path


def test_the_setting_reaches_the_model(tmp_path, year_files):
    config = c.load(write_config(tmp_path, str(year_files["pvgis"])), SCHEMA)
    model = PvSystem.from_config(config.site, config.pv)
    assert model.weather is not None and model.weather.kind == "PVGIS TMY"
    empty = c.load(write_config(tmp_path, ""), SCHEMA)
    assert PvSystem.from_config(empty.site, empty.pv).weather is None


def check_config(path: Path, capsys) -> tuple[int, str, str]:
    code = pvsimd_main(["--check-config", "--config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_config_names_the_weather_file(tmp_path, year_files, capsys):
    code, out, err = check_config(write_config(tmp_path, str(year_files["tmy3"])), capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("pvsimd: configuration OK")
    assert lines[1] == (
        f"pvsimd: weather file {year_files['tmy3']} (TMY3, 36.100, -79.950, 273 m; UTC-5 h), "
        "0 km from [site]"
    )
    assert len(lines) == 2


def test_a_file_for_a_faraway_place_gets_a_warning(tmp_path, year_files, capsys):
    far = write_config(tmp_path, str(year_files["epw"]), latitude=37.0, clouds="on")
    code, out, _ = check_config(far, capsys)
    assert code == 0
    assert (
        f"pvsimd: warning: [pv] weather: {year_files['epw']} is for 36.100, -79.950, 100 km "
        "from [site] (37, -79.95)" in out
    )
    assert "pvsimd: warning: [pv] clouds = on has no effect" in out
    near = write_config(tmp_path, str(year_files["epw"]), latitude=36.4)  # 33 km
    assert "warning" not in check_config(near, capsys)[1]


def test_days_without_any_light_get_a_warning_away_from_the_poles(tmp_path, capsys):
    dark = [
        dataclasses.replace(h, ghi=0.0, dni=0.0, dhi=0.0) if (h.month, h.day) == (5, 17) else h
        for h in synthetic_hours()
    ]
    path = tmp_path / "gap.csv"
    WRITERS["tmy3"](path, GREENSBORO, dark)
    _, out, _ = check_config(write_config(tmp_path, str(path)), capsys)
    assert (
        f"pvsimd: warning: [pv] weather: {path} has no light at all on 05-17 (a gap in its "
        "data?): those days give 0 W"
    ) in out.splitlines()
    polar = dataclasses.replace(GREENSBORO, latitude=78.2)  # Longyearbyen: polar nights
    WRITERS["tmy3"](path, polar, dark)
    params = PvParameters(78.2, -79.95)
    assert PvSystem(params, weather_files.load(path)).warnings() == []


def test_the_daemon_warns_at_start_and_names_the_file_in_its_status(tmp_path, year_files, caplog):
    path = write_config(tmp_path, str(year_files["tmy3"]), latitude=40.0)
    with caplog.at_level(logging.INFO, logger="pvsimd"):
        daemon = PvSimDaemon(c.load(path, SCHEMA), Signals(), Notifier(), argparse.Namespace())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"[pv] weather: {year_files['tmy3']} is for 36.100, -79.950, 434 km from [site] "
        "(40, -79.95): its weather does not go with the site's sun"
    ]
    assert daemon.status().endswith(f"; weather file {year_files['tmy3']}")
    daemon.files.close()


def assert_one_line_error(path: Path, capsys, *parts: str) -> None:
    code, out, err = check_config(path, capsys)
    assert code == c.EX_CONFIG == 78
    assert out == ""
    assert err.count("\n") == 1, err
    assert f"{path}: [pv] weather: " in err
    for part in parts:
        assert part in err, (part, err)


def year_file_lines(year_files: dict[str, Path], kind: str) -> list[str]:
    return year_files[kind].read_text().splitlines()


@pytest.mark.parametrize(
    ("kind", "line", "change", "problem"),
    [
        ("tmy3", 100, lambda f: f[:4] + ["x"] + f[5:], "line 100: GHI must be a number, got 'x'"),
        ("tmy3", 7, lambda f: f[:5] + ["-3"] + f[6:], "line 7: DNI must be 0 to 2000 W/m², got -3"),
        ("tmy3", 8, lambda f: [f[0], "25:00"] + f[2:], "line 8: date and time must be"),
        ("epw", 9, lambda f: f[:13] + ["9999"] + f[14:], "line 9: the GHI value is missing"),
        ("epw", 20, lambda f: f[:21] + ["fast"] + f[22:], "line 20: the wind speed must be"),
        ("pvgis", 30, lambda f: ["2007011:0000"] + f[1:], "line 30: time(UTC) must be"),
        ("pvgis", 31, lambda f: f[:3], "line 31: 3 fields, expected 10"),
    ],
)
def test_a_bad_record_exits_78_naming_the_file_and_line(
    tmp_path, year_files, capsys, kind, line, change, problem
):
    lines = year_file_lines(year_files, kind)
    lines[line - 1] = ",".join(change(lines[line - 1].split(",")))
    bad = tmp_path / f"bad.{kind}"
    bad.write_text("\n".join(lines) + "\n")
    assert_one_line_error(write_config(tmp_path, str(bad)), capsys, f"{bad}, {problem}")


def test_a_missing_or_repeated_hour_exits_78(tmp_path, year_files, capsys):
    lines = year_file_lines(year_files, "tmy3")
    gap = tmp_path / "gap.csv"
    gap.write_text("\n".join(lines[:50] + lines[51:]) + "\n")  # line 51: 01/03 01:00
    assert_one_line_error(
        write_config(tmp_path, str(gap)),
        capsys,
        f"{gap}: no record for 01-03 00:00; a weather file holds every hour of a year",
    )
    twice = tmp_path / "twice.csv"
    twice.write_text("\n".join(lines[:51] + lines[50:]) + "\n")
    assert_one_line_error(
        write_config(tmp_path, str(twice)),
        capsys,
        f"{twice}, line 52: a second record for 01-03 00:00 (the first is on line 51)",
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("hello\n", "line 1: not a weather file pvsimd reads"),
        ('{"inputs": {}}\n', "line 1: not a weather file pvsimd reads"),
        ("LOCATION,x,y\n", "line 1: LOCATION needs city"),
        ("Latitude (decimal degrees): 45\n", "no line of column names 'time(UTC),T2m,…'"),
        ("", "line 1: not a weather file"),
    ],
)
def test_a_file_that_is_not_a_weather_file_exits_78(tmp_path, capsys, content, problem):
    path = tmp_path / "weather.csv"
    path.write_text(content)
    assert_one_line_error(write_config(tmp_path, str(path)), capsys, f"{path}", problem)


def test_a_missing_file_or_a_relative_path_exits_78(tmp_path, capsys):
    missing = tmp_path / "nowhere.csv"
    assert_one_line_error(
        write_config(tmp_path, str(missing)),
        capsys,
        f"{missing}: cannot read it: No such file or directory",
    )
    assert_one_line_error(
        write_config(tmp_path, "tmy.csv"),
        capsys,
        "must be the absolute path of a weather file, got 'tmy.csv'",
    )


def test_the_distance_is_a_great_circle():
    zeros = (0.0,) * HOURS
    berlin = WeatherYear("x", "TMY3", 52.52, 13.405, 34, 0, 0, zeros, zeros, zeros, zeros, zeros)
    assert berlin.distance_km(48.137, 11.575) == pytest.approx(504, abs=2)  # Munich
    assert berlin.distance_km(52.52, 13.405) == 0.0
    assert math.isclose(berlin.distance_km(-52.52, -166.595), math.pi * 6371.0, rel_tol=1e-6)
