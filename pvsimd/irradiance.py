"""From horizontal irradiance to the irradiance on the modules' plane, in W/m².

Standard library only; scalar versions of the models as pvlib implements them:

- :func:`cloudy_sky`: the beam and diffuse parts of a cloudy sky's global irradiance,
  continuous with the clear sky's own split (Perez's DIRINDEX construction, with the
  Erbs, Klein and Duffie (1982) diffuse fraction as the decomposition model).
- :func:`plane_of_array`: beam on the tilted plane, the isotropic sky diffuse
  (Liu and Jordan) and the ground-reflected part for an albedo.
- :func:`ashrae_iam`: the ASHRAE incidence angle modifier of the beam (reflection off
  the glass at oblique incidence).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from pvsimd.clearsky import Irradiance


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


def erbs_beam_fraction(kt: float) -> float:
    """Erbs, Klein and Duffie (1982): the share of the global irradiance that comes with the
    beam (one minus the diffuse fraction) for a clearness index ``kt`` (0..1)."""
    if kt <= 0.22:
        return 0.09 * kt  # 1 − (1 − 0.09 kt), without the cancellation for a tiny kt
    if kt <= 0.8:
        return 1.0 - (0.9511 - 0.1604 * kt + 4.388 * kt**2 - 16.638 * kt**3 + 12.336 * kt**4)
    return 1.0 - 0.165


def cloudy_sky(ghi: float, clear: Irradiance, zenith: float, dni_extra: float) -> Irradiance:
    """The beam and diffuse parts of a cloudy ``ghi`` under a sky whose clear state is
    ``clear`` (GHI, DNI, DHI at the same sun, ``zenith`` being the one ``clear`` closes with).

    Perez's DIRINDEX construction with Erbs in place of DIRINT:
    DNI = DNI_clear × DNI_Erbs(GHI) / DNI_Erbs(GHI_clear), then DHI = GHI − DNI cos(zenith).
    At GHI = GHI_clear it is exactly the clear sky's split, and it moves away from it
    continuously as the clouds thicken; below, the beam fades as Erbs's decomposition of
    measured light says it does, but relative to the clear sky's own beam (which Erbs alone
    gets wrong at a low sun).  DNI_Erbs(G) × cos(zenith) = G × (1 − Erbs's diffuse
    fraction), so the cosine drops out of the ratio.
    """
    clear_beam = clear.ghi * erbs_beam_fraction(clearness_index(clear.ghi, zenith, dni_extra))
    if clear_beam <= 0.0 or ghi <= 0.0:
        return Irradiance(max(ghi, 0.0), 0.0, max(ghi, 0.0))
    beam = ghi * erbs_beam_fraction(clearness_index(ghi, zenith, dni_extra))
    dni = clear.dni * beam / clear_beam
    return Irradiance(ghi, dni, max(ghi - dni * math.cos(math.radians(zenith)), 0.0))


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
