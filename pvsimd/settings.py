"""pvsimd's configuration schema (see etc/pvsimd/pvsimd.ini for the commented reference)."""

from __future__ import annotations

from pvsim import broker, topology
from pvsim import config as c
from pvsim.lifecycle import logging_schema
from pvsimd.senders import parse_sender_map
from pvsimd.weather_files import parse_setting as parse_weather

SCHEMA: c.Schema = {
    "site": {
        "latitude": c.Option(c.number(-90, 90), None, "degrees, north positive"),
        "longitude": c.Option(c.number(-180, 180), None, "degrees, east positive"),
        "timezone": c.Option(c.timezone, "UTC", "IANA zone; decides each CSV file's day"),
        "altitude": c.Option(c.number(-500, 9000), "0", "metres above sea level"),
    },
    "pv": {  # the PV system (pvsimd/pv_model.py)
        "peak_power_w": c.Option(c.number(1, 1e9), "4000", "AC rating in W; never exceeded"),
        "dc_ac_ratio": c.Option(c.number(0.5, 3), "1.2", "modules' DC rating / AC rating"),
        "tilt": c.Option(c.number(0, 90), "30", "degrees from horizontal"),
        "azimuth": c.Option(c.number(0, 360), "180", "degrees clockwise from north"),
        "losses": c.Option(c.number(0, 99), "14", "system losses in percent of DC"),
        "clearsky": c.Option(c.choice("ineichen", "haurwitz"), "ineichen", "clear-sky model"),
        "linke_turbidity": c.Option(c.number(1, 10), "3", "Linke turbidity (ineichen)"),
        "albedo": c.Option(c.number(0, 1), "0.2", "ground reflectance"),
        "ambient_temperature": c.Option(c.number(-50, 60), "20", "air temperature in °C"),
        "clouds": c.Option(c.choice("off", "on"), "off", "seeded clouds"),
        "seed": c.Option(c.integer(), "0", "seed of the clouds"),
        "weather": c.Option(
            parse_weather,
            "",
            "weather file (PVGIS TMY CSV, EnergyPlus EPW, NREL TMY3 CSV) instead of the sky model",
        ),
    },
    "broker": broker.schema(
        queue=c.Option(broker.queue_name, topology.DEFAULT_QUEUE, "durable queue of readings"),
        prefetch=c.Option(c.integer(1, 65535), "1000", "unacknowledged deliveries at most"),
        dead_letter_queue=c.Option(
            broker.queue_name,
            topology.DEFAULT_DEAD_LETTER_QUEUE,
            "where invalid messages go, the reason in a header",
        ),
        delivery_limit=c.Option(
            c.integer(1, 1000),
            str(topology.DEFAULT_DELIVERY_LIMIT),
            "deliveries of one message before the broker dead-letters it"
        ),
    ),
    "output": {
        "directory": c.Option(c.path, "/var/lib/pvsimd", "CSV files go to <this>/<meter>/"),
        "fsync": c.Option(
            c.choice("batch", "file", "off"),
            "batch",
            "batch: one syncfs per flush before acknowledging; file: fsync each written file; "
            "off: leave it to the kernel",
        ),
        "flush_interval": c.Option(
            c.number(0.01, 10), "0.1", "seconds between flushes (and acknowledgements)"
        ),
        "max_open_files": c.Option(
            c.integer(1, 1048576), "16384", "descriptors kept open on day files at most"
        ),
    },
    "security": {
        "verify_sender": c.Option(
            c.boolean,
            "yes",
            "accept a reading only when its AMQP user_id may send for its meter_id",
        ),
        "sender_map": c.Option(
            parse_sender_map,
            "",
            "user:meter_id pairs (or a file of them) for users not named like their meter",
        ),
    },
    "logging": logging_schema(),
}
