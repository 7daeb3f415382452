"""Where the sun is: topocentric zenith and azimuth for a site and an instant.

Standard library only.  The sun's apparent geocentric position comes from the solar
coordinates of Meeus, *Astronomical Algorithms* (2nd ed.), chapter 25 (the mean
longitude, mean anomaly and equation of the centre, in Julian centuries of terrestrial
time), with the nutation of chapter 22 (its main four terms) and the annual aberration;
the hour angle from the apparent sidereal time of chapter 12.  From there on the steps
are those of NREL's SPA (Reda and Andreas, 2004): the parallax of the sun for the
observer's latitude and altitude, then the atmospheric refraction for the site's
pressure and temperature, applied while the sun's true elevation is above -0.83° (its
radius plus the refraction at the horizon).  Against SPA the zenith agrees within 0.007°
(the low-precision solar longitude leaves out planetary perturbations of up to 0.01°);
tests/validation checks 0.02° against pvlib's ``spa_python``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

# TT - UT in seconds (IERS, 2020s).  It shifts the sun along the ecliptic by ~0.001°
# only, so a constant is enough for a simulation.
DELTA_T_S = 69.0

_J2000 = 2451545.0
_UNIX_EPOCH_JD = 2440587.5
_SUN_RADIUS_DEG = 0.26667
_HORIZON_REFRACTION_DEG = 0.5667


class SolarPosition(NamedTuple):
    """Degrees.  Zenith from the vertical; azimuth clockwise from north (180: south)."""

    zenith: float  # true (geometric, topocentric)
    apparent_zenith: float  # refraction-corrected
    azimuth: float
    earth_sun_distance_au: float


def julian_day(epoch_s: float) -> float:
    """The Julian day (UT) of a POSIX timestamp."""
    return epoch_s / 86400.0 + _UNIX_EPOCH_JD


def sun_position(
    epoch_s: float,
    latitude: float,
    longitude: float,
    altitude_m: float = 0.0,
    pressure_hpa: float = 1013.25,
    temperature_c: float = 12.0,
    delta_t_s: float = DELTA_T_S,
) -> SolarPosition:
    """The sun as seen from (latitude, longitude, altitude_m) at POSIX time ``epoch_s``."""
    jd = julian_day(epoch_s)
    jc = (jd - _J2000) / 36525.0  # UT, for the sidereal time
    t = (jd + delta_t_s / 86400.0 - _J2000) / 36525.0  # TT, for the sun

    # Meeus ch. 25: geometric longitude and radius vector of the sun
    l0 = 280.46646 + t * (36000.76983 + t * 0.0003032)
    m = 357.52911 + t * (35999.05029 - t * 0.0001537)
    e = 0.016708634 - t * (0.000042037 + t * 0.0000001267)
    m_rad = math.radians(m)
    c = (
        (1.914602 - t * (0.004817 + t * 0.000014)) * math.sin(m_rad)
        + (0.019993 - t * 0.000101) * math.sin(2 * m_rad)
        + 0.000289 * math.sin(3 * m_rad)
    )
    true_longitude = l0 + c
    true_anomaly = math.radians(m + c)
    radius_au = 1.000001018 * (1 - e * e) / (1 + e * math.cos(true_anomaly))

    # Meeus ch. 22: nutation (main terms) and the obliquity of the ecliptic
    omega = math.radians(125.04452 - 1934.136261 * t)
    sun_mean = math.radians(280.4665 + 36000.7698 * t)
    moon_mean = math.radians(218.3165 + 481267.8813 * t)
    nutation_longitude = (
        -17.20 * math.sin(omega)
        - 1.32 * math.sin(2 * sun_mean)
        - 0.23 * math.sin(2 * moon_mean)
        + 0.21 * math.sin(2 * omega)
    ) / 3600.0
    nutation_obliquity = (
        9.20 * math.cos(omega)
        + 0.57 * math.cos(2 * sun_mean)
        + 0.10 * math.cos(2 * moon_mean)
        - 0.09 * math.cos(2 * omega)
    ) / 3600.0
    mean_obliquity = (
        23.0 + (26.0 + (21.448 - t * (46.8150 + t * (0.00059 - t * 0.001813))) / 60) / 60
    )
    obliquity = math.radians(mean_obliquity + nutation_obliquity)

    # apparent longitude: nutation and aberration (20.4898" / R)
    apparent_longitude = math.radians(
        true_longitude + nutation_longitude - 20.4898 / (3600.0 * radius_au)
    )
    right_ascension = math.degrees(
        math.atan2(math.cos(obliquity) * math.sin(apparent_longitude), math.cos(apparent_longitude))
    )
    declination = math.asin(math.sin(obliquity) * math.sin(apparent_longitude))

    # Meeus ch. 12: apparent sidereal time at Greenwich, then the local hour angle
    sidereal = (
        280.46061837
        + 360.98564736629 * (jd - _J2000)
        + jc * jc * (0.000387933 - jc / 38710000.0)
        + nutation_longitude * math.cos(obliquity)
    )
    hour_angle = math.radians((sidereal + longitude - right_ascension) % 360.0)

    # SPA 3.12: parallax of the sun for the observer (topocentric hour angle, declination)
    phi = math.radians(latitude)
    xi = math.radians(8.794 / (3600.0 * radius_au))
    u = math.atan(0.99664719 * math.tan(phi))
    x = math.cos(u) + altitude_m / 6378140.0 * math.cos(phi)
    y = 0.99664719 * math.sin(u) + altitude_m / 6378140.0 * math.sin(phi)
    denominator = math.cos(declination) - x * math.sin(xi) * math.cos(hour_angle)
    delta_alpha = math.atan2(-x * math.sin(xi) * math.sin(hour_angle), denominator)
    declination_t = math.atan2(
        (math.sin(declination) - y * math.sin(xi)) * math.cos(delta_alpha), denominator
    )
    hour_angle_t = hour_angle - delta_alpha

    # SPA 3.14-3.15: elevation, refraction, azimuth
    sin_elevation = math.sin(phi) * math.sin(declination_t) + math.cos(phi) * math.cos(
        declination_t
    ) * math.cos(hour_angle_t)
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, sin_elevation))))
    refraction = 0.0
    if elevation >= -(_SUN_RADIUS_DEG + _HORIZON_REFRACTION_DEG):
        refraction = (
            (pressure_hpa / 1010.0)
            * (283.0 / (273.0 + temperature_c))
            * 1.02
            / (60.0 * math.tan(math.radians(elevation + 10.3 / (elevation + 5.11))))
        )
    astronomers_azimuth = math.atan2(
        math.sin(hour_angle_t),
        math.cos(hour_angle_t) * math.sin(phi) - math.tan(declination_t) * math.cos(phi),
    )
    azimuth = (math.degrees(astronomers_azimuth) + 180.0) % 360.0
    return SolarPosition(
        zenith=90.0 - elevation,
        apparent_zenith=90.0 - (elevation + refraction),
        azimuth=azimuth,
        earth_sun_distance_au=radius_au,
    )
