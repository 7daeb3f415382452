"""pvsimd's metrics: exactly the declared ones, with the values of its counters; the
acknowledgement lag."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pvsim import build_info, wire
from pvsim.metrics_endpoint import Collector
from pvsimd.service import PvSimDaemon
from pvsimd.stats import ReadingStats
from tests.unit.pvsimd.harness import AckRecorder, daemon, deliver


def samples(d: PvSimDaemon) -> dict[str, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(d.all_metrics(), d._metric_values))
    got = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            got[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return got


def test_a_scrape_gives_every_declared_metric_with_the_counters_values(tmp_path):
    d = daemon(tmp_path, prefetch=400, fsync="batch", security="verify_sender = yes")
    d.open()
    d.sessions.session = AckRecorder()
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        for tag in (1, 2):
            deliver(d, tag, wire.Reading("house-a", now, 100.0, tag), user_id="house-a")
        deliver(d, 3, b"not json", routing_key="reading.house-a")
        deliver(d, 4, wire.Reading("house-b", now, 1.0, 4), user_id="house-a")  # forged
        deliver(d, 5, wire.Reading("house-a", now + timedelta(days=1), 1.0, 5), user_id="house-a")
        d.checkpoint()
        d._collect_syncs()
        d.syncer.wait_idle(5)
        d._collect_syncs()
        got = samples(d)
        assert {k.split("{")[0] for k in got} == {m.name for m in PvSimDaemon.all_metrics()}
    finally:
        d.files.discard_buffered()
        d.close()
    assert got["pvsimd_readings_received_total"] == 5
    assert got["pvsimd_readings_written_total"] == 1
    assert got["pvsimd_repeats_dropped_total"] == 1
    for reason in ("invalid", "forged", "future"):
        assert got[f"pvsimd_dead_letters_total{{reason={reason}}}"] == 1
    assert got["pvsimd_readings_acknowledged_total"] == 2  # up to the first dead letter
    assert got["pvsimd_open_day_files"] == 1
    assert got["pvsimd_journal_rows"] == 0
    assert got["pvsimd_csv_write_errors_total"] == 0
    assert math.isnan(got["pvsimd_queue_readings"])
    assert 0 <= got["pvsimd_pv_power_watts"] <= 4000
    assert got["pvsimd_broker_connected"] == 0
    build = f"build_date={build_info.build_date_text()},version={build_info.VERSION}"
    assert got[f"pvsimd_build_info{{{build}}}"] == 1


def test_the_acknowledgement_lag_counts_from_the_last_ack_while_deliveries_wait():
    stats = ReadingStats(UTC)
    assert stats.ack_lag(waiting=False, now=100.0) == 0
    stats.owing(True, 100.0)  # deliveries began to wait
    assert stats.ack_lag(waiting=True, now=103.0) == 3
    stats.acknowledged_upto(10, 104.0)
    stats.owing(True, 105.0)  # still some waiting: owed since 100, acknowledged at 104
    assert stats.ack_lag(waiting=True, now=110.0) == 6
    stats.owing(False, 111.0)
    assert stats.ack_lag(waiting=False, now=200.0) == 0
    stats.owing(True, 300.0)
    assert stats.ack_lag(waiting=True, now=300.5) == 0.5
