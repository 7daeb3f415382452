"""meterd's metrics: exactly the declared ones, with the values of its counters."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from meterd.clock_watch import ClockState
from meterd.service import MeterDaemon
from pvsim.metrics_endpoint import Collector
from pvsim.wire import Reading, encode, from_epoch_us
from tests.unit.meterd.test_service import meterd


def samples(d: MeterDaemon) -> dict[str, float]:
    """Every sample of a scrape: name{labels} -> value."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(d.all_metrics(), d._metric_values))
    text = generate_latest(registry).decode()
    got = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            got[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return got


def test_a_scrape_gives_every_declared_metric_and_no_other(tmp_path):
    d = meterd(tmp_path)
    d.spool.open()
    try:
        names = {key.split("{")[0] for key in samples(d)}
        assert names == {m.name for m in MeterDaemon.all_metrics()}
    finally:
        d.close()


def test_the_values_are_those_of_the_sampler_the_spool_and_the_service(tmp_path):
    d = meterd(tmp_path)
    d.spool.open()
    try:
        now = time.time()
        for k in (30, 20, 10):
            ts_us = round((now - k) * 1e6)
            body = encode(Reading("house-a", from_epoch_us(ts_us), 1.0, 0))
            d.spool.append(lambda seq, body=body: body, ts_us / 1e6)
        d.spool.confirm(0)
        d._on_published(3)
        d._on_confirmed(1)
        d.sampler.missed, d.sampler.skipped = 4, 2
        d.sampler.watch.state = ClockState.BEHIND
        d.sampler.watch.steps_back = 1
        got = samples(d)
    finally:
        d.close()
    assert got["meterd_readings_published_total"] == 3
    assert got["meterd_readings_confirmed_total"] == 1
    assert got["meterd_spool_readings"] == 2
    assert got["meterd_spool_bytes"] > 100
    assert 19 < got["meterd_spool_oldest_reading_age_seconds"] < 60
    assert abs(got["meterd_last_confirmed_reading_timestamp_seconds"] - (now - 30)) < 1e-3
    assert got["meterd_samples_missed_total"] == 4
    assert got["meterd_samples_skipped_total"] == 2
    assert got["meterd_clock_state{state=behind}"] == 1
    assert got["meterd_clock_state{state=ok}"] == got["meterd_clock_state{state=waiting}"] == 0
    assert got["meterd_clock_steps_total{direction=back}"] == 1
    assert got["meterd_clock_floor_timestamp_seconds"] > 1.7e9  # the build date
    assert got["meterd_sample_interval_seconds"] == 10
    assert got["meterd_broker_connected"] == 0
