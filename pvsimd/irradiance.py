"""From horizontal irradiance to the irradiance on the modules' plane, in W/m².

Standard library only; scalar versions of the models as pvlib implements them:

- :func:`erbs`: the Erbs, Klein and Duffie (1982) diffuse fraction, which splits a
  global horizontal irradiance into direct normal and diffuse horizontal parts.
- :func:`plane_of_array`: beam on the tilted plane, the isotropic sky diffuse
  (Liu and Jordan) and the ground-reflected part for an albedo.
- :func:`ashrae_iam`: the ASHRAE incidence angle modifier of the beam (reflection off
  the glass at oblique incidence).
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Decomposition(NamedTuple):
    dni: float
    dhi: float
    kt: float  # clearness index


class PlaneOfArray(NamedTuple):
    """Irradiance on the plane of the modules, W/m², and the angle of incidence, degrees."""

    direct: float
    sky_diffuse: float
    ground_diffuse: float
    aoi: float

    @property
    def total(self) -> float:
        return self.direct + self.sky_diffuse + self.ground_diffuse


def clearness_index(
    ghi: float,
    zenith: float,
    dni_extra: float,
    min_cos_zenith: float = 0.065,
    max_clearness_index: float = 1.0,
) -> float:
    """GHI over the extraterrestrial irradiance on a horizontal plane."""
    kt = ghi / (dni_extra * max(math.cos(math.radians(zenith)), min_cos_zenith))
    return min(max(kt, 0.0), max_clearness_index)


def erbs(
    ghi: float,
    zenith: float,
    dni_extra: float,
    min_cos_zenith: float = 0.065,
    max_zenith: float = 87,
) -> Decomposition:
    """Split ``ghi`` at true solar ``zenith`` into DNI and DHI (Erbs diffuse fraction)."""
    kt = clearness_index(ghi, zenith, dni_extra, min_cos_zenith, 1.0)
    if kt <= 0.22:
        df = 1 - 0.09 * kt
    elif kt <= 0.8:
        df = 0.9511 - 0.1604 * kt + 4.388 * kt**2 - 16.638 * kt**3 + 12.336 * kt**4
    else:
        df = 0.165
    dhi = df * ghi
    cos_zenith = math.cos(math.radians(zenith))
    dni = (ghi - dhi) / cos_zenith if cos_zenith != 0.0 else math.inf
    if zenith > max_zenith or ghi < 0 or dni < 0:
        return Decomposition(0.0, ghi, kt)
    return Decomposition(dni, dhi, kt)


def aoi_projection(tilt: float, azimuth: float, sun_zenith: float, sun_azimuth: float) -> float:
    """The cosine of the angle between the sun and the plane's normal."""
    projection = math.cos(math.radians(tilt)) * math.cos(math.radians(sun_zenith)) + math.sin(
        math.radians(tilt)
    ) * math.sin(math.radians(sun_zenith)) * math.cos(math.radians(sun_azimuth - azimuth))
    return min(max(projection, -1.0), 1.0)


def plane_of_array(
    tilt: float,
    azimuth: float,
    sun_zenith: float,
    sun_azimuth: float,
    dni: float,
    ghi: float,
    dhi: float,
    albedo: float,
) -> PlaneOfArray:
    """Beam, isotropic sky diffuse and ground-reflected irradiance on the tilted plane."""
    projection = aoi_projection(tilt, azimuth, sun_zenith, sun_azimuth)
    cos_tilt = math.cos(math.radians(tilt))
    return PlaneOfArray(
        direct=max(dni * projection, 0.0),
        sky_diffuse=dhi * (1 + cos_tilt) * 0.5,
        ground_diffuse=ghi * albedo * (1 - cos_tilt) * 0.5,
        aoi=math.degrees(math.acos(projection)),
    )


def ashrae_iam(aoi: float, b: float = 0.05) -> float:
    """Share of the beam that enters the module at incidence angle ``aoi`` (0..1)."""
    if abs(aoi) >= 90.0:
        return 0.0
    return max(0.0, 1 - b * (1 / math.cos(math.radians(aoi)) - 1))
