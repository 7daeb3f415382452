"""pvsimd's configuration: one frozen dataclass per section, each key with its parser,
default and meaning (the README's table and the checks of the reference docs come from
here; etc/pvsimd/pvsimd.ini is the commented reference file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from pvsim import broker, metrics, topology
from pvsim import config as c
from pvsim.lifecycle import LoggingSettings
from pvsimd.day_files import FSYNC_MODES
from pvsimd.senders import SenderMap, parse_sender_map
from pvsimd.weather_files import parse_setting as parse_weather
from pvsimd.weather_year import WeatherYear


@dataclass(frozen=True, kw_only=True)
class SiteSettings(c.Section):
    """[site]: where the PV system is."""

    latitude: float = c.key(c.number(-90, 90), None, "degrees, north positive")
    longitude: float = c.key(c.number(-180, 180), None, "degrees, east positive")
    timezone: ZoneInfo = c.key(
        c.timezone, "UTC", "IANA zone; decides each CSV file's day and the timestamps' offset"
    )
    altitude: float = c.key(c.number(-500, 9000), "0", "metres above sea level (-500–9000)")


@dataclass(frozen=True, kw_only=True)
class PvSettings(c.Section):
    """The PV system (pvsimd/pv_model.py)."""

    peak_power_w: float = c.key(
        c.number(1, 1e9), "4000", "AC rating of the inverter in W; the PV power never exceeds it"
    )
    dc_ac_ratio: float = c.key(
        c.number(0.5, 3),
        "1.2",
        "modules' DC rating (1000 W/m², 25 °C) / AC rating, 0.5–3; above 1 the inverter clips",
    )
    tilt: float = c.key(c.number(0, 90), "30", "degrees from horizontal, 0–90")
    azimuth: float = c.key(
        c.number(0, 360),
        "180",
        "direction the modules face, degrees clockwise from north (90 east, 180 south), 0–360",
    )
    losses: float = c.key(
        c.number(0, 99), "14", "system losses in percent of the DC power, 0–99"
    )
    clearsky: str = c.key(
        c.choice("ineichen", "haurwitz"),
        "ineichen",
        "clear-sky model: `ineichen` (Ineichen-Perez: global, beam and diffuse light) or "
        "`haurwitz` (global light, split in Ineichen's proportions)",
    )
    linke_turbidity: float = c.key(
        c.number(1, 10),
        "3",
        "Linke turbidity, 1–10 (2 very clear, 5 hazy): `ineichen`'s light, and `haurwitz`'s "
        "share of beam",
    )
    albedo: float = c.key(c.number(0, 1), "0.2", "share of light the ground reflects, 0–1")
    ambient_temperature: float = c.key(
        c.number(-50, 60), "20", "air temperature in °C (module temperature, refraction)"
    )
    clouds: str = c.key(
        c.choice("off", "on"),
        "off",
        "`on`: seeded clouds, each day clear, mixed or overcast; `off`: clear sky",
    )
    seed: int = c.key(
        c.integer(),
        "0",
        "seed of the clouds (a whole number); same seed, same weather for a timestamp",
    )
    weather: WeatherYear | None = c.key(
        parse_weather,
        "",
        "absolute path of a weather file — PVGIS TMY CSV, EnergyPlus EPW or NREL TMY3 CSV — "
        "whose light, air temperature and wind replace the sky model (`clearsky`, "
        "`linke_turbidity`, `ambient_temperature`, `clouds`); read once at start (see *Real "
        "weather*); empty: the sky model",
    )


@dataclass(frozen=True, kw_only=True)
class PvsimdBrokerSettings(broker.BrokerSettings):
    """[broker] of pvsimd: the shared keys plus its queues and prefetch."""

    queue: str = c.key(
        broker.queue_name,
        topology.DEFAULT_QUEUE,
        "durable quorum queue of readings, bound with `reading.*`",
    )
    prefetch: int = c.key(
        c.integer(1, 65535),
        "1000",
        "unacknowledged deliveries at most; pvsimd also flushes and acknowledges after every "
        "quarter of it",
    )
    dead_letter_queue: str = c.key(
        broker.queue_name,
        topology.DEFAULT_DEAD_LETTER_QUEUE,
        "where invalid messages go, the reason in header `x-pvsim-reason`",
    )
    delivery_limit: int = c.key(
        c.integer(1, 1000),
        str(topology.DEFAULT_DELIVERY_LIMIT),
        "deliveries of one message before the broker dead-letters it (poison)",
    )
    replicas: int | None = c.key(
        c.optional(c.integer(1, 99)),
        "",
        "replicas of each queue on a cluster (`x-quorum-initial-group-size`), fixed when the "
        "queue is created; empty: not declared, the broker's default (three in RabbitMQ 3.10: "
        "every node of a cluster of three, the one node of a single broker); changing it for "
        "an existing queue makes its declaration fail",
    )
    shards: int = c.key(
        c.integer(1, 1000),
        "1",
        "readings split by meter over this many queues `<queue>.0` … through a "
        "consistent-hash exchange (plugin `rabbitmq_consistent_hash_exchange`), each "
        "consumed by one pvsimd at a time; all of them write one shared `[output] directory` "
        "(see docs/scaling.md); `1`: the one queue `<queue>`",
    )
    shard: int = c.key(
        c.integer(0, 999),
        "0",
        "the shard this pvsimd consumes, 0 … `shards` - 1; a second pvsimd for the same "
        "shard is its hot standby",
    )

    @property
    def topology(self) -> topology.Topology:
        return topology.Topology(
            exchange=self.exchange,
            queue=self.queue,
            dead_letter_queue=self.dead_letter_queue,
            delivery_limit=self.delivery_limit,
            replicas=self.replicas,
            shards=self.shards,
            shard=min(self.shard, self.shards - 1),  # a bad shard is refused by check()
        )


@dataclass(frozen=True, kw_only=True)
class SecuritySettings(c.Section):
    """[security]: whose readings pvsimd accepts."""

    verify_sender: bool = c.key(
        c.boolean,
        "yes",
        "accept a reading only when its AMQP `user_id` (set by meterd, vouched for by the "
        "broker) may send for its `meter_id`; others are dead-lettered as forged",
    )
    sender_map: SenderMap = c.key(
        parse_sender_map,
        "",
        "users that send for meters not named like them: `user:meter_id` pairs "
        "(`guest:house-a, guest:house-b`) or the path of a file of them; any other user only "
        "for the meter of its own name",
    )
    trust_local_guest: bool = c.key(
        c.boolean,
        "yes",
        "with the broker on this machine (`url` names `localhost`, `127.x.x.x` or `::1`), "
        "readings sent as RabbitMQ's `guest` are accepted for any meter `sender_map` does not "
        "list `guest` for: RabbitMQ lets `guest` log in only from its own host, so they come "
        "from this machine (see *Security*: why it is safe, and when to say `no`)",
    )
    future_tolerance: float = c.key(
        c.duration(1),
        "5m",
        "a reading whose timestamp is further ahead of this machine's clock is dead-lettered "
        "with reason `future` (s, m, h, d); older readings are always taken",
    )


@dataclass(frozen=True, kw_only=True)
class OutputSettings(c.Section):
    """[output]: where the CSV files go and how they are made durable."""

    directory: Path = c.key(
        c.path, "/var/lib/pvsimd", "CSV files go to `<this>/<meter_id>/<YYYY-MM-DD>.csv`"
    )
    fsync: str = c.key(
        c.choice(*FSYNC_MODES),
        "batch",
        "when rows are durable before the ack: `batch` one `syncfs` per flush; `file` an "
        "`fsync` per written file (and new directory entry); `off` leave it to the kernel",
    )
    flush_interval: float = c.key(
        c.number(0.01, 10),
        "0.1",
        "seconds between flushes (and acknowledgements), sooner after `prefetch`/4 deliveries",
    )
    max_open_files: int = c.key(
        c.integer(1, 1048576),
        "16384",
        "descriptors kept open on day files at most (least recently used closed, reopened "
        "when written to); one per meter is cheapest; the unit's `LimitNOFILE=65536` leaves "
        "room",
    )


@dataclass(frozen=True, kw_only=True)
class PvsimdMetricsSettings(c.Section):
    """[metrics]: pvsimd's Prometheus endpoint."""

    listen: metrics.Listen | None = metrics.listen_key(":10490")


@dataclass(frozen=True, kw_only=True)
class PvsimdConfig(c.Config):
    """pvsimd's whole configuration."""

    site: SiteSettings
    pv: PvSettings
    broker: PvsimdBrokerSettings
    security: SecuritySettings
    output: OutputSettings
    metrics: PvsimdMetricsSettings
    logging: LoggingSettings


SCHEMA = PvsimdConfig
