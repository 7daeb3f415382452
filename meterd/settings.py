"""meterd's configuration schema (see etc/meterd/meterd.ini for the commented reference)."""

from __future__ import annotations

from meterd import load_model
from pvsim import broker
from pvsim import config as c
from pvsim.lifecycle import logging_schema
from pvsim.wire import METER_ID_RE

SCHEMA: c.Schema = {
    "meter": {
        "id": c.Option(
            c.pattern(METER_ID_RE.pattern, "1-64 letters, digits, '-' or '_'"),
            None,
            "this house's meter id; also the routing key reading.<id>",
        ),
        "interval": c.Option(
            c.number(0.001, 86400), "10", "seconds between samples (may be fractional)"
        ),
        "profile": c.Option(
            c.choice(*load_model.PROFILES),
            "household",
            "load model: household (BDEW H0 with appliances), random_walk or uniform",
        ),
        "annual_kwh": c.Option(
            c.number(100, 20000), "3500", "household: the house's energy per year in kWh"
        ),
        "timezone": c.Option(
            c.timezone, "Europe/Berlin", "household: the house's local time (IANA zone)"
        ),
        "max_step": c.Option(
            c.number(0, 9000), "300", "random_walk: largest change in W from one sample to the next"
        ),
        "seed": c.Option(
            c.optional(c.integer()),
            "",
            "seed of the load model (empty: household by meter id alone, others random)",
        ),
        "state_directory": c.Option(
            c.path, "/var/lib/meterd", "state (spool, sequence) lives in <this>/<id>/"
        ),
    },
    "broker": broker.schema(
        drain_timeout=c.Option(
            c.number(0, 600), "5", "seconds to publish the backlog when stopping"
        ),
        publish_window=c.Option(
            c.integer(1, 100_000), "1000", "readings published but not yet confirmed, at most"
        ),
    ),
    "spool": {
        "fsync": c.Option(c.boolean, "yes", "fsync each reading before it is published"),
        "max_bytes": c.Option(
            c.size(4096), "32M", "unpublished readings kept at most, in bytes (K, M, G)"
        ),
        "max_age": c.Option(
            c.duration(1), "7d", "unpublished readings older than this are dropped (s, m, h, d)"
        ),
    },
    "logging": logging_schema(),
}
