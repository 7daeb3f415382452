"""pvsimd in the weather of a weather file against pvlib reading the same file.

The data: the two NREL TMY3 files pvlib's wheel ships (pvlib/data/723170TYA.CSV,
Greensboro NC, UTC-5; pvlib/data/703165TY.csv, Sand Point AK, UTC-9), and an EnergyPlus
EPW and a PVGIS TMY CSV written from the same hours (tests/support/weather_files.py),
each with its own time labelling: TMY3 and EPW label each hourly mean with the end of its
hour in local standard time (so it stands for the middle of the hour), the PVGIS file
with the start of the hour in UTC and an irradiance time offset of half an hour.

pvlib reads each file with its own reader (read_tmy3, read_epw, read_pvgis_tmy), the
timestamps are moved to the instant each record stands for (the middle of the hour), and
the chain of tests/validation/test_pv_vs_pvlib.py runs on the file's GHI, DNI, DHI, air
temperature and wind speed.  pvsimd reads the same file ([pv] weather) and gives its
power for the same instants: where the light is exactly the record's.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pvlib
import pytest

from pvsimd import weather_files
from pvsimd.pv_model import PvParameters, PvSystem
from tests.support.weather_files import Hour, Site, write_epw, write_pvgis
from tests.validation.test_pv_vs_pvlib import pvlib_ac_power, pvlib_solar_position

DATA = Path(pvlib.__file__).parent / "data"
FILES = {"greensboro": DATA / "723170TYA.CSV", "sand-point": DATA / "703165TY.csv"}
YEAR = 2025  # the year of the readings (any year maps onto the file's)
AC_TOL_W = 2.0  # per hour, including pvsimd's rounding to 0.1 W
DAY_ENERGY_TOL = 0.01
YEAR_ENERGY_TOL = 0.005  # pvsimd sampled every 10 minutes, as a meter would, interpolated
HORIZON_STRADDLES = 4  # a year's records at a sun within 0.01° of the horizon (see below)


def tmy3_site(path: Path) -> tuple[Site, list[Hour]]:
    data, meta = pvlib.iotools.read_tmy3(path, coerce_year=YEAR, map_variables=True)
    site = Site(
        meta["Name"], meta["latitude"], meta["longitude"], meta["altitude"], int(meta["TZ"])
    )
    starts = data.index - pd.Timedelta(hours=1)  # pvlib labels the end of the hour
    hours = [
        Hour(t.month, t.day, t.hour, r.ghi, r.dni, r.dhi, r.temp_air, r.wind_speed)
        for t, r in zip(starts, data.itertuples(), strict=True)
    ]
    return site, hours


@pytest.fixture(scope="module", params=list(FILES))
def files(request, tmp_path_factory) -> tuple[str, Site, dict[str, Path]]:
    """The shipped TMY3 file and an EPW and a PVGIS file written from its hours."""
    name = request.param
    site, hours = tmy3_site(FILES[name])
    directory = tmp_path_factory.mktemp(name)
    write_epw(directory / f"{name}.epw", site, hours)
    write_pvgis(directory / f"{name}-pvgis.csv", site, hours)
    paths = {
        "tmy3": FILES[name],
        "epw": directory / f"{name}.epw",
        "pvgis": directory / f"{name}-pvgis.csv",
    }
    return name, site, paths


def pvlib_weather(kind: str, path: Path) -> pd.DataFrame:
    """pvlib's reading of the file, indexed by the instant each record stands for."""
    if kind == "tmy3":
        data, _ = pvlib.iotools.read_tmy3(path, coerce_year=YEAR, map_variables=True)
        return data.set_axis(data.index - pd.Timedelta(minutes=30))  # labels: the hour's end
    if kind == "epw":
        data, _ = pvlib.iotools.read_epw(path, coerce_year=YEAR)
        return data.set_axis(data.index + pd.Timedelta(minutes=30))  # pvlib: the hour's start
    data, meta = pvlib.iotools.read_pvgis_tmy(path, pvgis_format="csv", map_variables=True)
    offset = pd.Timedelta(hours=meta["inputs"]["irradiance time offset"])
    index = pd.DatetimeIndex([t.replace(year=YEAR) for t in data.index]) + offset
    return data.set_axis(index).sort_index()


def parameters(site: Site) -> PvParameters:
    return PvParameters(site.latitude, site.longitude, altitude=site.elevation)


def standard_time(site: Site) -> str:
    return f"Etc/GMT{-site.timezone:+d}"  # POSIX zone names have the sign reversed


@pytest.mark.parametrize("kind", ["tmy3", "epw", "pvgis"])
def test_hourly_ac_and_daily_energy_match_pvlib_reading_the_same_file(files, kind):
    name, site, paths = files
    p = parameters(site)
    weather = pvlib_weather(kind, paths[kind])
    assert len(weather) == 8760
    sun = pvlib_solar_position(p, weather.index)
    ref = pvlib_ac_power(
        p, sun, weather[["ghi", "dni", "dhi"]], weather["temp_air"], weather["wind_speed"]
    )
    model = PvSystem(p, weather_files.load(paths[kind]))
    ours = pd.Series([model.power_w(t) for t in weather.index.to_pydatetime()], index=ref.index)

    # A file has light at the horizon (an hourly mean around sunrise); where the two sun
    # positions (0.01° apart at most) fall on both sides of it, one side gives 0 W
    ours_sun = [model.sun(t.timestamp()) for t in weather.index]
    ours_up = np.array([s.apparent_zenith < 90.0 for s in ours_sun])
    straddle = ours_up != (sun["apparent_zenith"].to_numpy() < 90.0)
    assert straddle.sum() <= HORIZON_STRADDLES
    error = (ours - ref).abs()
    assert error[~straddle].max() <= AC_TOL_W, error[~straddle].idxmax()

    # each day of the file's standard time (its month and day: with UTC labels, the
    # evening of 31 December comes first in the file), in Wh, the straddles left out
    day = ref.index.tz_convert(standard_time(site)).strftime("%m-%d")
    ref_days = ref[~straddle].groupby(day[~straddle]).sum()
    our_days = ours[~straddle].groupby(day[~straddle]).sum()
    assert len(ref_days) == 365
    assert (ref_days > 0).all()
    worst = (our_days / ref_days - 1).abs()
    assert worst.max() <= DAY_ENERGY_TOL, (worst.idxmax(), worst.max())


def test_the_three_formats_give_the_same_weather_and_pvlibs_energy_for_the_year(files):
    """A meter's view: every 10 minutes of the year, the weather interpolated between the
    records; the three readers agree at every instant, and the year's energy is pvlib's."""
    name, site, paths = files
    p = parameters(site)
    years = {kind: weather_files.load(path) for kind, path in paths.items()}
    instants = pd.date_range(
        f"{YEAR}-01-01", f"{YEAR + 1}-01-01", freq="10min", inclusive="left", tz="UTC"
    )
    epochs = [t.timestamp() for t in instants]
    reference = np.array([years["tmy3"].at(e) for e in epochs])
    for kind in ("epw", "pvgis"):
        other = np.array([years[kind].at(e) for e in epochs])
        assert np.abs(other - reference).max() < 1e-9, kind

    model = PvSystem(p, years["pvgis"])
    energy_kwh = sum(model.power_w(t) for t in instants.to_pydatetime()) / 6 / 1000
    weather = pvlib_weather("tmy3", paths["tmy3"])
    sun = pvlib_solar_position(p, weather.index)
    ref = pvlib_ac_power(
        p, sun, weather[["ghi", "dni", "dhi"]], weather["temp_air"], weather["wind_speed"]
    )
    ref_kwh = ref.sum() / 1000
    assert math.isclose(energy_kwh, ref_kwh, rel_tol=YEAR_ENERGY_TOL), (energy_kwh, ref_kwh)
    expected = {"greensboro": (6200, 6700), "sand-point": (3700, 4100)}[name]
    assert expected[0] < ref_kwh < expected[1]  # 4 kW AC, 4.8 kWp at 30°, facing south
