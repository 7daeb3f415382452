"""Writes greensboro.epw and greensboro-pvgis.csv from the hours of greensboro-tmy3.csv
(from the repository's top: python3 -m tests.unit.pvsimd.weather.make_samples)."""

from __future__ import annotations

from pathlib import Path

from pvsimd.weather_files import read_records
from pvsimd.weather_year import month_day_hour
from tests.support.weather_files import Hour, Site, write_epw, write_pvgis

HERE = Path(__file__).parent


def main() -> None:
    header, records = read_records(HERE / "greensboro-tmy3.csv")
    zone = round(header.utc_offset_s / 3600)
    site = Site("GREENSBORO", header.latitude, header.longitude, header.elevation, zone)
    hours = [
        Hour(*month_day_hour(r.hour), r.ghi, r.dni, r.dhi, r.temp_air, r.wind_speed)
        for r in records
    ]
    write_epw(HERE / "greensboro.epw", site, hours)
    write_pvgis(HERE / "greensboro-pvgis.csv", site, hours)


if __name__ == "__main__":
    main()
