"""What meterd tells Prometheus: its metrics (name, type, meaning — the README's table is
made of these) and their values, read at scrape time from where they are counted: the
sampler, the spool and the service (:mod:`pvsim.metrics` holds the machinery and the
metrics both daemons share)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from meterd.clock_watch import ClockState
from pvsim.metrics import Metric, Value

if TYPE_CHECKING:
    from meterd.service import MeterDaemon

METRICS = (
    Metric(
        "meterd_readings_sampled_total",
        "counter",
        "samples taken at the ticks of the schedule (or of a replay)",
    ),
    Metric(
        "meterd_readings_spooled_total",
        "counter",
        "readings recorded in the spool (a sample the spool cannot take is missed)",
    ),
    Metric(
        "meterd_readings_published_total",
        "counter",
        "readings sent to the broker (after a lost connection the unconfirmed ones are "
        "sent again, and count again)",
    ),
    Metric(
        "meterd_readings_confirmed_total",
        "counter",
        "readings the broker confirmed: they left the spool",
    ),
    Metric(
        "meterd_readings_dropped_total",
        "counter",
        "unpublished readings dropped by the spool's bounds (`max_bytes`, `max_age`)",
    ),
    Metric("meterd_spool_readings", "gauge", "readings in the spool not yet confirmed"),
    Metric("meterd_spool_bytes", "gauge", "bytes those readings take in the spool"),
    Metric(
        "meterd_spool_oldest_reading_age_seconds",
        "gauge",
        "age of the oldest of them, by its timestamp (0: none)",
    ),
    Metric(
        "meterd_spool_corrupt_records_total",
        "counter",
        "damaged spool records skipped (a power cut, a failing disk)",
    ),
    Metric(
        "meterd_samples_missed_total",
        "counter",
        "ticks that passed without a sample: the clock stepped forward, meterd fell behind, "
        "or the spool could not be written",
    ),
    Metric(
        "meterd_samples_skipped_total",
        "counter",
        "ticks not sampled because a reading at or after their time was recorded already "
        "(the clock stepped back)",
    ),
    Metric(
        "meterd_clock_state",
        "gauge",
        "1 for the clock's state as the sampler sees it, 0 for the others: `ok`; `waiting` "
        "(earlier than the trust floor: nothing is sampled); `behind` (stepped back: ticks "
        "are skipped)",
        ("state",),
    ),
    Metric(
        "meterd_clock_steps_total",
        "counter",
        "steps of the wall clock seen while sampling, by `direction` (`forward`, `back`)",
        ("direction",),
    ),
    Metric(
        "meterd_clock_floor_timestamp_seconds",
        "gauge",
        "the trust floor: the build date, or the newest reading in the spool at start if "
        "later (0: none)",
    ),
    Metric(
        "meterd_last_confirmed_reading_timestamp_seconds",
        "gauge",
        "timestamp of the newest reading the broker confirmed (0: none yet)",
    ),
    Metric("meterd_sample_interval_seconds", "gauge", "`[meter] interval`"),
)


def values(daemon: MeterDaemon) -> dict[str, Value]:
    """The values of :data:`METRICS` now (in the metrics thread: reads only)."""
    sampler, spool, watch = daemon.sampler, daemon.spool, daemon.sampler.watch
    oldest = spool.oldest_ts()
    return {
        "meterd_readings_sampled_total": sampler.sampled,
        "meterd_readings_spooled_total": sampler.recorded,
        "meterd_readings_published_total": daemon.sent,
        "meterd_readings_confirmed_total": daemon.published,
        "meterd_readings_dropped_total": spool.dropped,
        "meterd_spool_readings": spool.backlog,
        "meterd_spool_bytes": spool.backlog_bytes,
        "meterd_spool_oldest_reading_age_seconds": (
            0 if oldest is None else max(0.0, time.time() - oldest)
        ),
        "meterd_spool_corrupt_records_total": spool.skipped_records,
        "meterd_samples_missed_total": sampler.missed,
        "meterd_samples_skipped_total": sampler.skipped,
        "meterd_clock_state": {(s.value,): int(watch.state is s) for s in ClockState},
        "meterd_clock_steps_total": {
            ("forward",): watch.steps_forward,
            ("back",): watch.steps_back,
        },
        "meterd_clock_floor_timestamp_seconds": (watch.floor_us or 0) / 1_000_000,
        "meterd_last_confirmed_reading_timestamp_seconds": spool.confirmed_ts or 0,
        "meterd_sample_interval_seconds": daemon.config.meter.interval,
    }
