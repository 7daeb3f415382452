"""Clear-sky irradiance on the ground: what a cloudless sky lets through, in W/m².

Standard library only; scalar versions of the models as pvlib implements them, so that
tests/validation can compare the two directly:

- :func:`extraterrestrial_irradiance`: Spencer (1971), solar constant 1366.1 W/m².
- :func:`relative_airmass`: Kasten and Young (1989), of the apparent zenith.
- :func:`site_pressure_pa`: the standard atmosphere's pressure at an altitude.
- :func:`ineichen`: Ineichen and Perez (2002) with a Linke turbidity: GHI, DNI, DHI.
- :func:`haurwitz`: Haurwitz (1945), GHI from the zenith alone.
- :func:`haurwitz_split`: Haurwitz's GHI split into DNI and DHI in the proportions of
  Ineichen-Perez's clear sky for the same sun and Linke turbidity.

A clear sky's beam is the clear-sky model's own: Ineichen gives GHI, DNI and DHI.  A
decomposition model fitted to *measured* global irradiance (Erbs, DISC) must not split a
clear-sky GHI: it takes the low sun's clear light for a hazy sky's and loses a quarter
to two thirds of the beam below 20° of elevation.  Haurwitz gives the global irradiance
only, so its split borrows the shape of Ineichen's clear sky: DNI = GHI × DNI_I / GHI_I.
"""

from __future__ import annotations

import math
from typing import NamedTuple

SOLAR_CONSTANT = 1366.1  # W/m²


class Irradiance(NamedTuple):
    """Global horizontal, direct normal and diffuse horizontal irradiance in W/m²."""

    ghi: float
    dni: float
    dhi: float


def extraterrestrial_irradiance(day_of_year: int) -> float:
    """Normal irradiance at the top of the atmosphere (Spencer), day 1 = 1 January."""
    b = 2.0 * math.pi / 365.0 * (day_of_year - 1)
    return SOLAR_CONSTANT * (
        1.00011
        + 0.034221 * math.cos(b)
        + 0.00128 * math.sin(b)
        + 0.000719 * math.cos(2 * b)
        + 0.000077 * math.sin(2 * b)
    )


def site_pressure_pa(altitude_m: float) -> float:
    """Air pressure of the standard atmosphere at ``altitude_m`` above sea level."""
    return 100.0 * ((44331.514 - altitude_m) / 11880.516) ** (1.0 / 0.1902632)


def relative_airmass(apparent_zenith: float) -> float:
    """Kasten-Young relative air mass; NaN when the sun is below the horizon."""
    if apparent_zenith > 90.0:
        return math.nan
    return 1.0 / (
        math.cos(math.radians(apparent_zenith))
        + 0.50572 * (6.07995 + (90.0 - apparent_zenith)) ** -1.6364
    )


def ineichen(
    apparent_zenith: float,
    airmass_absolute: float,
    linke_turbidity: float,
    altitude_m: float = 0.0,
    dni_extra: float = 1364.0,
) -> Irradiance:
    """Ineichen-Perez clear sky; zero when the sun is at or below the horizon."""
    cos_zenith = max(math.cos(math.radians(apparent_zenith)), 0.0)
    if cos_zenith == 0.0 or not math.isfinite(airmass_absolute):
        return Irradiance(0.0, 0.0, 0.0)
    tl = linke_turbidity
    fh1 = math.exp(-altitude_m / 8000.0)
    fh2 = math.exp(-altitude_m / 1250.0)
    cg1 = 5.09e-05 * altitude_m + 0.868
    cg2 = 3.92e-05 * altitude_m + 0.0387
    ghi = cg1 * dni_extra * cos_zenith * math.exp(-cg2 * airmass_absolute * (fh1 + fh2 * (tl - 1)))
    b = 0.664 + 0.163 / fh1
    bnci = dni_extra * max(b * math.exp(-0.09 * airmass_absolute * (tl - 1)), 0.0)
    bnci_2 = ghi * min(
        max((1 - (0.1 - 0.2 * math.exp(-tl)) / (0.1 + 0.882 / fh1)) / cos_zenith, 0.0), 1e20
    )
    dni = min(bnci, bnci_2)
    return Irradiance(ghi, dni, ghi - dni * cos_zenith)


def haurwitz(apparent_zenith: float) -> float:
    """Haurwitz clear-sky GHI; zero when the sun is at or below the horizon."""
    cos_zenith = math.cos(math.radians(apparent_zenith))
    if cos_zenith <= 0.0:
        return 0.0
    return 1098.0 * cos_zenith * math.exp(-0.059 / cos_zenith)


def haurwitz_split(
    apparent_zenith: float,
    airmass_absolute: float,
    linke_turbidity: float,
    altitude_m: float = 0.0,
    dni_extra: float = 1364.0,
) -> Irradiance:
    """Haurwitz's GHI with the beam share of Ineichen-Perez's clear sky at the same sun:
    DNI = GHI × DNI_I / GHI_I, DHI = GHI − DNI cos(zenith) (= GHI × DHI_I / GHI_I)."""
    ghi = haurwitz(apparent_zenith)
    shape = ineichen(apparent_zenith, airmass_absolute, linke_turbidity, altitude_m, dni_extra)
    if ghi <= 0.0 or shape.ghi <= 0.0:
        return Irradiance(0.0, 0.0, 0.0)
    dni = shape.dni * ghi / shape.ghi
    return Irradiance(ghi, dni, ghi - dni * math.cos(math.radians(apparent_zenith)))
