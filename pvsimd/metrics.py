"""What pvsimd tells Prometheus: its metrics (name, type, meaning — the README's table is
made of these) and their values, read at scrape time from where they are counted: the
reading stats, the acknowledgement record, the day files, the consumer and the PV
model (:mod:`pvsim.metrics` holds the machinery and the metrics both daemons share).
Nothing here runs per reading."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pvsim.metrics import Metric, Value
from pvsimd.stats import DEAD_LETTER_REASONS

if TYPE_CHECKING:
    from pvsimd.service import PvSimDaemon

METRICS = (
    Metric(
        "pvsimd_readings_received_total",
        "counter",
        "deliveries from the readings queue (a redelivery counts again)",
    ),
    Metric(
        "pvsimd_readings_written_total",
        "counter",
        "readings taken as a new row of their day file",
    ),
    Metric(
        "pvsimd_repeats_dropped_total",
        "counter",
        "readings dropped because their day file has a row of that meter and time already",
    ),
    Metric(
        "pvsimd_dead_letters_total",
        "counter",
        "messages moved to the dead-letter queue, by `reason`: `invalid` (not a valid "
        "reading), `forged` (a sender that may not speak for the meter), `future` (too far "
        "ahead of this machine's clock)",
        ("reason",),
    ),
    Metric(
        "pvsimd_readings_acknowledged_total",
        "counter",
        "deliveries acknowledged to the broker (their rows durable, or dead-lettered)",
    ),
    Metric(
        "pvsimd_acknowledgement_lag_seconds",
        "gauge",
        "how long deliveries have waited for an acknowledgement since the last one (0: none "
        "waits)",
    ),
    Metric(
        "pvsimd_csv_write_errors_total",
        "counter",
        "failed writes or syncs of the CSV files (each failed retry counts)",
    ),
    Metric(
        "pvsimd_open_day_files",
        "gauge",
        "day files with an open descriptor (at most `max_open_files`)",
    ),
    Metric(
        "pvsimd_journal_rows",
        "gauge",
        "rows in the backlog journal that have not reached their day files yet",
    ),
    Metric(
        "pvsimd_queue_readings",
        "gauge",
        "readings waiting in the queue, as the broker said last (asked every 5 s; NaN: not "
        "known)",
    ),
    Metric("pvsimd_pv_power_watts", "gauge", "the PV power now, by the PV model of the site"),
)


def values(daemon: PvSimDaemon) -> dict[str, Value]:
    """The values of :data:`METRICS` now (in the metrics thread: reads only)."""
    stats, record, files = daemon.stats, daemon.record, daemon.files
    consumer = daemon.consumer
    depth = consumer.depth if consumer is not None else None
    journal = files.journal
    return {
        "pvsimd_readings_received_total": stats.received,
        "pvsimd_readings_written_total": stats.rows,
        "pvsimd_repeats_dropped_total": stats.duplicates,
        "pvsimd_dead_letters_total": {(r,): stats.dead_letters[r] for r in DEAD_LETTER_REASONS},
        "pvsimd_readings_acknowledged_total": stats.acknowledged,
        "pvsimd_acknowledgement_lag_seconds": stats.ack_lag(
            record.waiting > 0, time.monotonic()
        ),
        "pvsimd_csv_write_errors_total": stats.write_errors,
        "pvsimd_open_day_files": files.open_count,
        "pvsimd_journal_rows": journal.checkpoints.rows if journal is not None else 0,
        "pvsimd_queue_readings": math.nan if depth is None else depth,
        "pvsimd_pv_power_watts": daemon.pv.power_w(datetime.now(UTC)),
    }
