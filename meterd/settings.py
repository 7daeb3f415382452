"""meterd's configuration: one frozen dataclass per section, each key with its parser,
default and meaning (the README's table and the checks of the reference docs come from
here; etc/meterd/meterd.ini is the commented reference file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from meterd import load_model
from pvsim import config as c
from pvsim import metrics
from pvsim.broker import BrokerSettings
from pvsim.lifecycle import LoggingSettings
from pvsim.wire import METER_ID_RE


@dataclass(frozen=True, kw_only=True)
class MeterSettings(c.Section):
    """[meter]: which house, how often, and its load model."""

    id: str = c.key(
        c.pattern(METER_ID_RE.pattern, "1-64 letters, digits, '-' or '_'"),
        None,
        "this house's meter id: 1–64 letters, digits, `-`, `_`; routing key `reading.<id>`",
    )
    interval: float = c.key(
        c.number(0.001, 86400),
        "10",
        "seconds between samples (may be fractional); the n-th sample is at n × interval "
        "since the epoch",
    )
    profile: str = c.key(
        c.choice(*load_model.PROFILES),
        "household",
        "load model: `household` (BDEW H0 with appliances), `random_walk` or `uniform` (see "
        "*The models*)",
    )
    annual_kwh: float = c.key(
        c.number(100, 20000), "3500", "`household`: the house's energy per year, kWh (100–20000)"
    )
    timezone: ZoneInfo = c.key(
        c.timezone,
        "Europe/Berlin",
        "`household`: the house's local time (IANA zone), in which it lives its day",
    )
    max_step: float = c.key(
        c.number(0, 9000),
        "300",
        "`random_walk`: largest change in W from one sample to the next",
    )
    seed: int | None = c.key(
        c.optional(c.integer()),
        "",
        "seed of the load model (empty: `household` is chosen by the meter id alone, the same "
        "at every start; the others take a random seed)",
    )
    state_directory: Path = c.key(
        c.path, "/var/lib/meterd", "state (spool, sequence) lives in `<this>/<id>/`"
    )


@dataclass(frozen=True, kw_only=True)
class MeterdBrokerSettings(BrokerSettings):
    """[broker] of meterd: the shared keys plus draining and the publish window."""

    drain_timeout: float = c.key(
        c.number(0, 600), "5", "seconds to publish the backlog when stopping"
    )
    publish_window: int = c.key(
        c.integer(1, 100_000), "1000", "readings published but not yet confirmed, at most"
    )


@dataclass(frozen=True, kw_only=True)
class SpoolSettings(c.Section):
    """[spool]: how durable, and how much is kept while the broker is away."""

    fsync: bool = c.key(c.boolean, "yes", "fsync each reading before it is published")
    max_bytes: int = c.key(
        c.size(4096),
        "32M",
        "unpublished readings kept at most, in bytes (K, M, G); beyond it the oldest are "
        "dropped and logged",
    )
    max_age: float = c.key(
        c.duration(1),
        "7d",
        "unpublished readings older than this (by their timestamp) are dropped (s, m, h, d)",
    )


@dataclass(frozen=True, kw_only=True)
class MeterdMetricsSettings(c.Section):
    """[metrics]: meterd's Prometheus endpoint."""

    listen: metrics.Listen | None = metrics.listen_key(
        ":10491",
        metrics.LISTEN_DOC + "; each further `meterd@` instance on a box needs its own "
        "(10492, 10493, …)",
    )


@dataclass(frozen=True, kw_only=True)
class MeterdConfig(c.Config):
    """meterd's whole configuration."""

    meter: MeterSettings
    broker: MeterdBrokerSettings
    spool: SpoolSettings
    metrics: MeterdMetricsSettings
    logging: LoggingSettings


SCHEMA = MeterdConfig
