"""The PV model: the AC power a PV system at the site produces at a given moment.

The daemon only needs :class:`PvModel`.  :class:`PvSystem` is a PVWatts-style chain,
standard library only, each step a model that pvlib also implements (and
tests/validation compares against it):

1. sun position (:mod:`pvsimd.solar_position`, Meeus + SPA's parallax and refraction);
2. clear-sky irradiance (:mod:`pvsimd.clearsky`): Ineichen-Perez with a constant Linke
   turbidity, its own GHI, DNI and DHI; or Haurwitz's GHI split in Ineichen's proportions;
   Spencer's extraterrestrial irradiance, Kasten-Young air mass at the site's pressure;
3. with ``clouds = on``, the global irradiance times a seeded clear-sky index kc
   (:mod:`pvsimd.clouds`), split into beam and diffuse continuously with the clear sky's
   split (:func:`pvsimd.irradiance.cloudy_sky`: DIRINDEX's construction with Erbs);
4. plane of array: beam (times the ASHRAE incidence angle modifier), isotropic sky
   diffuse, ground-reflected with the albedo (:mod:`pvsimd.irradiance`);
5. cell temperature: Faiman (u0 = 25, u1 = 6.84, wind 1 m/s) at the ambient temperature;
6. DC: PVWatts, pdc0 × E/1000 × (1 + γ (T_cell − 25)), pdc0 = AC rating × DC/AC ratio,
   γ = −0.4 %/°C; then the system losses in percent;
7. AC: the PVWatts inverter (nominal efficiency 96 %), clipping at the AC rating.

With a weather file (``[pv] weather``, :mod:`pvsimd.weather_files`) steps 2 and 3 give
way to the file's GHI, DNI and DHI, and step 5 takes its air temperature and wind speed,
all interpolated for the reading's month, day and time of day
(:class:`pvsimd.weather_year.WeatherYear`).

Exactly 0 W while the sun is below the horizon; always within 0..peak_power_w, rounded
to 0.1 W.  With clouds the result never exceeds the clear-sky result for the same
instant.  Nothing is cached here: pvsimd asks once per distinct timestamp
(:mod:`pvsimd.moments`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from pvsimd import clearsky, clouds, irradiance
from pvsimd.solar_position import SolarPosition, sun_position
from pvsimd.weather_year import WeatherYear

if TYPE_CHECKING:
    from pvsimd.settings import PvSettings, SiteSettings

GAMMA_PDC = -0.004  # 1/°C: crystalline silicon
FAIMAN_U0 = 25.0  # W/(m² K)
FAIMAN_U1 = 6.84  # W s/(m³ K)
WIND_SPEED = 1.0  # m/s
INVERTER_ETA_NOMINAL = 0.96
INVERTER_ETA_REFERENCE = 0.9637
IAM_B = 0.05
FAR_KM = 50.0  # a weather file for a place farther from the site gets a warning
POLAR_CIRCLE = 66.0  # degrees of latitude: closer to the equator every day has some light

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class PvModel(Protocol):
    """What pvsimd asks of a PV model: the AC power at an instant."""

    def power_w(self, ts: datetime) -> float:
        """PV output in W at ``ts`` (aware), within 0..peak power, rounded to 0.1 W."""


@dataclass(frozen=True)
class PvParameters:
    """The site and the system.  Angles in degrees, azimuth clockwise from north."""

    latitude: float
    longitude: float
    altitude: float = 0.0
    peak_power_w: float = 4000.0  # the inverter's AC rating
    dc_ac_ratio: float = 1.2
    tilt: float = 30.0
    azimuth: float = 180.0
    losses: float = 14.0  # percent of the DC power
    clearsky: str = "ineichen"  # or "haurwitz"
    linke_turbidity: float = 3.0
    albedo: float = 0.2
    ambient_temperature: float = 20.0  # °C
    clouds: bool = False
    seed: int = 0

    @property
    def pdc0(self) -> float:
        """The modules' DC rating at 1000 W/m² and 25 °C."""
        return self.peak_power_w * self.dc_ac_ratio

    @property
    def inverter_pdc0(self) -> float:
        """The inverter's DC input at its AC rating."""
        return self.peak_power_w / INVERTER_ETA_NOMINAL

    @property
    def pressure_pa(self) -> float:
        return clearsky.site_pressure_pa(self.altitude)


class PvSystem:
    """A PV system at a site: ``power_w(ts)`` in W, a pure function of ``ts``.

    With a ``weather`` year (``[pv] weather``) the light, the air temperature and the
    wind come from it instead of the sky model (clear sky, clouds, ambient temperature)."""

    def __init__(self, params: PvParameters, weather: WeatherYear | None = None):
        if params.clearsky not in ("ineichen", "haurwitz"):
            raise ValueError(f"unknown clear-sky model {params.clearsky!r}")
        self.params = params
        self.weather = weather

    def warnings(self) -> list[str]:
        """What an operator should hear at start about this configuration."""
        weather, p = self.weather, self.params
        if weather is None:
            return []
        lines = []
        distance = weather.distance_km(p.latitude, p.longitude)
        if distance > FAR_KM:
            lines.append(
                f"[pv] weather: {weather.source} is for {weather.latitude:.3f}, "
                f"{weather.longitude:.3f}, {distance:.0f} km from [site] ({p.latitude:g}, "
                f"{p.longitude:g}): its weather does not go with the site's sun"
            )
        dark = weather.dark_days()
        if dark and abs(weather.latitude) < POLAR_CIRCLE:  # no polar night to explain them
            shown = ", ".join(dark[:5]) + (f" and {len(dark) - 5} more" if len(dark) > 5 else "")
            lines.append(
                f"[pv] weather: {weather.source} has no light at all on {shown} (a gap in its "
                "data?): those days give 0 W"
            )
        if p.clouds:
            lines.append("[pv] clouds = on has no effect: the weather comes from [pv] weather")
        return lines

    @classmethod
    def from_config(cls, site: SiteSettings, pv: PvSettings) -> PvSystem:
        """From pvsimd's validated ``[site]`` and ``[pv]`` sections."""
        return cls(
            PvParameters(
                latitude=site.latitude,
                longitude=site.longitude,
                altitude=site.altitude,
                peak_power_w=pv.peak_power_w,
                dc_ac_ratio=pv.dc_ac_ratio,
                tilt=pv.tilt,
                azimuth=pv.azimuth,
                losses=pv.losses,
                clearsky=pv.clearsky,
                linke_turbidity=pv.linke_turbidity,
                albedo=pv.albedo,
                ambient_temperature=pv.ambient_temperature,
                clouds=pv.clouds == "on",
                seed=pv.seed,
            ),
            pv.weather,
        )

    def power_w(self, ts: datetime) -> float:
        return self._compute_at_us((ts - _EPOCH) // _MICROSECOND)

    def _compute_at_us(self, epoch_us: int) -> float:
        p = self.params
        if self.weather is not None:
            power = self.weather_power_w(epoch_us / 1e6)
        else:
            power = self.ac_power_w(epoch_us / 1e6, None if p.clouds else 1.0)
        value = round(min(max(power, 0.0), p.peak_power_w), 1)
        while value > p.peak_power_w:  # a rating that is not a multiple of 0.1 W
            value = round(value - 0.1, 1)
        return value

    def sun(self, epoch_s: float) -> SolarPosition:
        p = self.params
        return sun_position(
            epoch_s,
            p.latitude,
            p.longitude,
            p.altitude,
            pressure_hpa=p.pressure_pa / 100.0,
            temperature_c=p.ambient_temperature,
        )

    def clear_sky(self, sun: SolarPosition, dni_extra: float) -> clearsky.Irradiance:
        """GHI, DNI and DHI of the cloudless sky for the sun at ``sun``."""
        p = self.params
        airmass = clearsky.relative_airmass(sun.apparent_zenith) * p.pressure_pa / 101325.0
        model = clearsky.ineichen if p.clearsky == "ineichen" else clearsky.haurwitz_split
        return model(sun.apparent_zenith, airmass, p.linke_turbidity, p.altitude, dni_extra)

    def ac_power_w(self, epoch_s: float, kc: float | None = 1.0) -> float:
        """Unrounded AC power at POSIX time ``epoch_s`` under clear-sky index ``kc``
        (None: the seeded clouds' kc, never more than the clear sky's power)."""
        p = self.params
        sun = self.sun(epoch_s)
        if sun.apparent_zenith >= 90.0:
            return 0.0  # the sun is below the horizon
        dni_extra = clearsky.extraterrestrial_irradiance(time.gmtime(math.floor(epoch_s)).tm_yday)
        clear = self.clear_sky(sun, dni_extra)
        if kc is None:
            kc = clouds.clear_sky_index(p.seed, epoch_s, p.longitude)
            if kc >= 1.0:
                return self.array_power_w(sun, clear, p.ambient_temperature, WIND_SPEED)
            # clouds only take light away: a dimmer, more diffuse sky can still give a
            # plane facing away from a low sun more than the clear sky does; cap it there
            return min(
                self.array_power_w(sun, clear, p.ambient_temperature, WIND_SPEED),
                self.array_power_w(
                    sun,
                    irradiance.cloudy_sky(kc * clear.ghi, clear, sun.apparent_zenith, dni_extra),
                    p.ambient_temperature,
                    WIND_SPEED,
                ),
            )
        if kc != 1.0:
            clear = irradiance.cloudy_sky(kc * clear.ghi, clear, sun.apparent_zenith, dni_extra)
        return self.array_power_w(sun, clear, p.ambient_temperature, WIND_SPEED)

    def weather_power_w(self, epoch_s: float) -> float:
        """Unrounded AC power at POSIX time ``epoch_s`` in the weather year's weather."""
        sun = self.sun(epoch_s)
        if sun.apparent_zenith >= 90.0:
            return 0.0
        weather = self.weather.at(epoch_s)
        light = clearsky.Irradiance(weather.ghi, weather.dni, weather.dhi)
        return self.array_power_w(sun, light, weather.temp_air, weather.wind_speed)

    def array_power_w(
        self,
        sun: SolarPosition,
        light: clearsky.Irradiance,
        temperature_c: float,
        wind_speed: float,
    ) -> float:
        """Unrounded AC power for horizontal irradiance ``light`` with the sun at ``sun``."""
        p = self.params
        poa = irradiance.plane_of_array(
            p.tilt,
            p.azimuth,
            sun.apparent_zenith,
            sun.azimuth,
            light.dni,
            light.ghi,
            light.dhi,
            p.albedo,
        )
        effective = (
            poa.direct * irradiance.ashrae_iam(poa.aoi, IAM_B)
            + poa.sky_diffuse
            + poa.ground_diffuse
        )
        cell_temperature = temperature_c + poa.total / (FAIMAN_U0 + FAIMAN_U1 * wind_speed)
        dc = effective / 1000.0 * p.pdc0 * (1 + GAMMA_PDC * (cell_temperature - 25.0))
        dc *= 1.0 - p.losses / 100.0
        return pvwatts_inverter(dc, p.inverter_pdc0)


def pvwatts_inverter(pdc: float, pdc0: float) -> float:
    """PVWatts inverter: part-load efficiency curve, clipped at eta_nominal × pdc0."""
    if pdc <= 0.0:
        return 0.0
    zeta = pdc / pdc0
    eta = (INVERTER_ETA_NOMINAL / INVERTER_ETA_REFERENCE) * (
        -0.0162 * zeta - 0.0059 / zeta + 0.9858
    )
    return max(0.0, min(INVERTER_ETA_NOMINAL * pdc0, eta * pdc))
