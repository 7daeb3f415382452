"""pvsimd's PV model against pvlib, the reference implementation of the same models.

pvlib is a test-only dependency: it is installed in the PyPI virtualenv only
(scripts/requirements-pypi.txt), and scripts/test runs this tier in that phase alone.
The import below is unconditional on purpose: where pvlib is missing, this module fails
to collect — it never turns into a skip that looks like a pass.

Both sides get identical parameters: the same site (altitude, pressure from it, ambient
temperature for the refraction), the same constant Linke turbidity (never pvlib's
climatology), ΔT, albedo, tilt and azimuth, and the constants of pvsimd.pv_model.  The
pvlib chain is its clear-sky workflow (what ``Location.get_clearsky`` feeds
``ModelChain.run_model``): spa_python → get_extra_radiation (Spencer) → Kasten-Young air
mass → clearsky.ineichen's GHI, DNI and DHI as they are → get_total_irradiance
(isotropic) → iam.ashrae on the beam → temperature.faiman → pvsystem.pvwatts_dc →
losses → inverter.pvwatts.  Haurwitz gives GHI only; pvsimd splits it in the proportions
of Ineichen's clear sky, and so does the reference here.  With clouds, both take the same
clear-sky index kc and split kc × GHI by DIRINDEX's construction with Erbs:
DNI = DNI_clear × erbs(kc GHI).dni / erbs(GHI).dni.  Every minute of three local days
(both solstices and the March equinox) at five sites: north and south, tropical, high
altitude, polar, and one near the date line.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pvlib
import pytest

from pvsimd import clouds, pv_model
from pvsimd.pv_model import PvParameters, PvSystem
from pvsimd.solar_position import DELTA_T_S, sun_position

ZENITH_TOL_DEG = 0.02  # zenith (true and apparent) against SPA
AZIMUTH_TOL_DEG = 0.02  # azimuth while the sun is up and 25° or more from the zenith;
# near the zenith (and the nadir) the azimuth is ill-conditioned, so everywhere the arc on
# the sky, Δazimuth × sin(zenith), must be within the same 0.02°
AC_TOL_W = 2.0  # per minute, including pvsimd's rounding to 0.1 W
ENERGY_TOL = 0.005  # daily energy, relative
CLOUD_SEED = 0  # a clear, a mixed and an overcast day on the three DAYS at Berlin


@dataclass(frozen=True)
class Site:
    name: str
    timezone: str
    params: PvParameters


SITES = [
    Site("berlin", "Europe/Berlin", PvParameters(52.52, 13.405, altitude=34.0)),
    Site(
        "sydney",
        "Australia/Sydney",
        PvParameters(-33.87, 151.21, altitude=58.0, azimuth=0.0, linke_turbidity=3.5),
    ),
    Site(  # west of the date line, UTC+13: its local day is the previous UTC day's afternoon
        "apia",
        "Pacific/Apia",
        PvParameters(
            -13.83,
            -171.76,
            altitude=2.0,
            tilt=10.0,
            azimuth=350.0,
            linke_turbidity=4.0,
            dc_ac_ratio=1.4,
            ambient_temperature=28.0,
        ),
    ),
    Site(  # tropical, 1795 m
        "nairobi",
        "Africa/Nairobi",
        PvParameters(
            -1.29,
            36.82,
            altitude=1795.0,
            tilt=15.0,
            azimuth=90.0,
            linke_turbidity=2.5,
            albedo=0.3,
            losses=10.0,
        ),
    ),
    Site(  # midnight sun and polar night, Haurwitz, snow
        "tromso",
        "Europe/Oslo",
        PvParameters(
            69.65,
            18.96,
            altitude=10.0,
            tilt=60.0,
            azimuth=200.0,
            clearsky="haurwitz",
            albedo=0.6,
            ambient_temperature=5.0,
            peak_power_w=6000.0,
            dc_ac_ratio=1.0,
        ),
    ),
]
DAYS = [date(2026, 3, 20), date(2026, 6, 21), date(2026, 12, 21)]
CASES = [pytest.param(s, d, id=f"{s.name}-{d}") for s in SITES for d in DAYS]


def local_day_minutes(site: Site, day: date) -> pd.DatetimeIndex:
    """Every minute of ``day`` in the site's time zone (23 to 25 hours)."""
    tz = ZoneInfo(site.timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return pd.date_range(start, end, freq="1min", inclusive="left")


def pvlib_solar_position(p: PvParameters, times: pd.DatetimeIndex) -> pd.DataFrame:
    return pvlib.solarposition.spa_python(
        times,
        p.latitude,
        p.longitude,
        altitude=p.altitude,
        pressure=pvlib.atmosphere.alt2pres(p.altitude),
        temperature=p.ambient_temperature,
        delta_t=DELTA_T_S,
    )


def pvlib_clear_sky(p: PvParameters, times: pd.DatetimeIndex, sun: pd.DataFrame) -> pd.DataFrame:
    """GHI, DNI and DHI of the clear sky: Ineichen's own, or Haurwitz's GHI in Ineichen's
    proportions."""
    pressure = pvlib.atmosphere.alt2pres(p.altitude)
    dni_extra = pvlib.irradiance.get_extra_radiation(times.tz_convert("UTC").day_of_year)
    airmass = pvlib.atmosphere.get_absolute_airmass(
        pvlib.atmosphere.get_relative_airmass(sun["apparent_zenith"]), pressure
    )
    ineichen = pvlib.clearsky.ineichen(
        sun["apparent_zenith"], airmass, p.linke_turbidity, p.altitude, dni_extra
    )
    if p.clearsky == "ineichen":
        return ineichen[["ghi", "dni", "dhi"]]
    ghi = pvlib.clearsky.haurwitz(sun["apparent_zenith"])["ghi"]
    dni = (ineichen["dni"] * ghi / ineichen["ghi"]).where(ineichen["ghi"] > 0, 0.0)
    dhi = ghi - dni * np.cos(np.radians(sun["apparent_zenith"]))
    return pd.DataFrame({"ghi": ghi, "dni": dni, "dhi": dhi})


def pvlib_cloudy_sky(
    clear: pd.DataFrame, kc: np.ndarray, times: pd.DatetimeIndex, sun: pd.DataFrame
) -> pd.DataFrame:
    """kc × GHI, split as DIRINDEX does with Erbs in place of DIRINT (pvlib.irradiance.
    dirindex's formula); Erbs without its 87° cut-off, at the zenith the clear sky closes
    with."""
    zenith = sun["apparent_zenith"]
    doy = times.tz_convert("UTC").day_of_year
    ghi = clear["ghi"] * kc
    cloudy_beam = pvlib.irradiance.erbs(ghi, zenith, doy, max_zenith=90)["dni"]
    clear_beam = pvlib.irradiance.erbs(clear["ghi"], zenith, doy, max_zenith=90)["dni"]
    dni = (clear["dni"] * cloudy_beam / clear_beam).where(clear_beam > 0, 0.0)
    dhi = np.maximum(ghi - dni * np.cos(np.radians(zenith)), 0.0)
    return pd.DataFrame({"ghi": ghi, "dni": dni, "dhi": dhi})


def pvlib_ac_power(
    p: PvParameters,
    sun: pd.DataFrame,
    light: pd.DataFrame,
    temp_air: float | pd.Series | None = None,
    wind_speed: float | pd.Series = pv_model.WIND_SPEED,
) -> pd.Series:
    """AC power from horizontal GHI, DNI and DHI: isotropic plane of array, ASHRAE IAM on
    the beam, Faiman, PVWatts DC, losses, PVWatts inverter."""
    poa = pvlib.irradiance.get_total_irradiance(
        p.tilt,
        p.azimuth,
        sun["apparent_zenith"],
        sun["azimuth"],
        light["dni"],
        light["ghi"],
        light["dhi"],
        albedo=p.albedo,
        model="isotropic",
    )
    aoi = pvlib.irradiance.aoi(p.tilt, p.azimuth, sun["apparent_zenith"], sun["azimuth"])
    effective = poa["poa_direct"] * pvlib.iam.ashrae(aoi, pv_model.IAM_B) + poa["poa_diffuse"]
    cell = pvlib.temperature.faiman(
        poa["poa_global"],
        p.ambient_temperature if temp_air is None else temp_air,
        wind_speed=wind_speed,
        u0=pv_model.FAIMAN_U0,
        u1=pv_model.FAIMAN_U1,
    )
    dc = pvlib.pvsystem.pvwatts_dc(effective, cell, p.pdc0, pv_model.GAMMA_PDC)
    dc = dc * (1 - p.losses / 100)
    ac = pvlib.inverter.pvwatts(
        dc,
        p.peak_power_w / pv_model.INVERTER_ETA_NOMINAL,
        eta_inv_nom=pv_model.INVERTER_ETA_NOMINAL,
        eta_inv_ref=pv_model.INVERTER_ETA_REFERENCE,
    )
    ac = np.asarray(ac, dtype=float)
    # pvsimd gives exactly 0 W while the sun is below the horizon
    ac = np.where(sun["apparent_zenith"].to_numpy() >= 90.0, 0.0, ac)
    assert not np.isnan(ac).any()
    return pd.Series(ac, index=sun.index)


def ours(p: PvParameters, times: pd.DatetimeIndex):
    epochs = [t.timestamp() for t in times.to_pydatetime()]
    pressure_hpa = p.pressure_pa / 100
    sun = [
        sun_position(e, p.latitude, p.longitude, p.altitude, pressure_hpa, p.ambient_temperature)
        for e in epochs
    ]
    system = PvSystem(p)
    ac = np.array([system.power_w(t) for t in times.to_pydatetime()])
    return sun, ac


@pytest.mark.parametrize(("site", "day"), CASES)
def test_solar_position_matches_spa(site, day):
    times = local_day_minutes(site, day)
    p = site.params
    ref = pvlib_solar_position(p, times)
    sun, _ = ours(p, times)
    zenith = np.array([s.zenith for s in sun])
    apparent = np.array([s.apparent_zenith for s in sun])
    azimuth = np.array([s.azimuth for s in sun])

    assert np.abs(zenith - ref["zenith"].to_numpy()).max() <= ZENITH_TOL_DEG
    # SPA refracts only above a true elevation of -0.83°: compare the apparent zenith
    # where the sun is at most 0.5° below the horizon, well clear of that switch
    up = zenith < 90.5
    if up.any():
        assert np.abs(apparent - ref["apparent_zenith"].to_numpy())[up].max() <= ZENITH_TOL_DEG
    d_azimuth = np.abs((azimuth - ref["azimuth"].to_numpy() + 180.0) % 360.0 - 180.0)
    assert (d_azimuth * np.sin(np.radians(zenith))).max() <= AZIMUTH_TOL_DEG
    up_not_overhead = (zenith >= 25.0) & up
    if up_not_overhead.any():
        assert d_azimuth[up_not_overhead].max() <= AZIMUTH_TOL_DEG


@pytest.mark.parametrize(("site", "day"), CASES)
def test_ac_power_matches_pvlibs_clear_sky_chain_minute_by_minute_and_per_day(site, day):
    times = local_day_minutes(site, day)
    p = site.params
    ref_sun = pvlib_solar_position(p, times)
    ref = pvlib_ac_power(p, ref_sun, pvlib_clear_sky(p, times, ref_sun)).to_numpy()
    sun, ac = ours(p, times)

    assert np.abs(ac - ref).max() <= AC_TOL_W
    # exactly zero while the sun is down, on both sides
    down = np.array([s.apparent_zenith >= 90.0 for s in sun])
    assert (ac[down] == 0.0).all()
    assert (ac <= p.peak_power_w).all()

    energy, ref_energy = ac.sum() / 60.0, ref.sum() / 60.0  # Wh
    if ref_energy == 0.0:  # polar night
        assert energy == 0.0
    else:
        assert math.isclose(energy, ref_energy, rel_tol=ENERGY_TOL)


@pytest.mark.parametrize(("site", "day"), CASES)
def test_clouded_ac_power_matches_pvlib_given_the_same_clear_sky_index(site, day):
    """The cloudy split over the whole range of kc, from overcast to clear."""
    p = dataclasses.replace(site.params, clouds=True, seed=CLOUD_SEED)
    times = local_day_minutes(site, day)
    kc = np.array([clouds.clear_sky_index(p.seed, t.timestamp(), p.longitude) for t in times])
    ref_sun = pvlib_solar_position(p, times)
    clear_sky = pvlib_clear_sky(p, times, ref_sun)
    clear = pvlib_ac_power(p, ref_sun, clear_sky).to_numpy()
    cloudy = pvlib_ac_power(p, ref_sun, pvlib_cloudy_sky(clear_sky, kc, times, ref_sun))
    ref = np.minimum(cloudy.to_numpy(), clear)
    _, ac = ours(p, times)
    assert np.abs(ac - ref).max() <= AC_TOL_W
    if ref.sum() == 0.0:
        assert ac.sum() == 0.0
    else:
        assert math.isclose(ac.sum(), ref.sum(), rel_tol=ENERGY_TOL)


def test_the_clouded_days_are_one_of_each_type():
    site = SITES[0]
    noons = [local_day_minutes(site, day)[720].timestamp() for day in DAYS]
    days = [clouds.solar_day(t, site.params.longitude) for t in noons]
    assert {clouds.day_type(CLOUD_SEED, d).name for d in days} == {"clear", "mixed", "overcast"}


def test_the_cases_cover_clipping_night_and_the_polar_day_and_night():
    """The comparison is only as good as the conditions it goes through."""
    clipped = 0
    for site in SITES:
        for day in DAYS:
            _, ac = ours(site.params, local_day_minutes(site, day))
            clipped += int((ac == site.params.peak_power_w).sum())
            assert (ac == 0.0).any() or (site.name, day.month) == ("tromso", 6)
    assert clipped > 60  # the inverter's clipping is compared too
    tromso = SITES[-1]
    _, midsummer = ours(tromso.params, local_day_minutes(tromso, date(2026, 6, 21)))
    assert (midsummer > 0.0).all()  # the midnight sun
    _, midwinter = ours(tromso.params, local_day_minutes(tromso, date(2026, 12, 21)))
    assert (midwinter == 0.0).all()  # the polar night
