"""pvsimd's configuration schema (see etc/pvsimd/pvsimd.ini for the commented reference)."""

from __future__ import annotations

from pvsim import broker
from pvsim import config as c
from pvsim.lifecycle import logging_schema

SCHEMA: c.Schema = {
    "site": {
        "latitude": c.Option(c.number(-90, 90), None, "degrees, north positive"),
        "longitude": c.Option(c.number(-180, 180), None, "degrees, east positive"),
        "timezone": c.Option(c.timezone, "UTC", "IANA zone; decides each CSV file's day"),
    },
    "broker": broker.schema(
        queue=c.Option(broker.queue_name, "pvsimd.readings", "durable queue of readings"),
        prefetch=c.Option(c.integer(1, 65535), "1000", "unacknowledged deliveries at most"),
        dead_letter_queue=c.Option(
            broker.queue_name,
            "pvsimd.readings.invalid",
            "where invalid messages go, the reason in a header",
        ),
        delivery_limit=c.Option(
            c.integer(1, 1000), "20", "deliveries of one message before the broker dead-letters it"
        ),
    ),
    "output": {
        "directory": c.Option(c.path, "/var/lib/pvsimd", "CSV files go to <this>/<meter>/"),
        "fsync": c.Option(
            c.choice("batch", "off"),
            "batch",
            "batch: fsync written files before acknowledging; off: leave it to the kernel",
        ),
        "flush_interval": c.Option(
            c.number(0.01, 10), "0.1", "seconds between flushes (and acknowledgements)"
        ),
        "max_open_files": c.Option(c.integer(1, 65536), "256", "day files kept open at most"),
    },
    "logging": logging_schema(),
}
