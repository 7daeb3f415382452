"""When pvsimd commits: after a quarter of the prefetch window, without waiting for the
flush interval, so that acknowledgements reach the broker while three quarters of the
window are still in hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pvsim import wire
from pvsimd.service import ack_batch
from tests.unit.pvsimd.harness import AckRecorder, daemon, deliver


def test_ack_batch_is_a_quarter_of_the_prefetch():
    assert [ack_batch(p) for p in (1, 3, 4, 8, 1000)] == [1, 1, 1, 2, 250]


def test_deliveries_are_acknowledged_every_quarter_window(tmp_path):
    d = daemon(tmp_path, prefetch=8, fsync="off")
    d.sessions.session = recorder = AckRecorder()
    t0 = datetime(2026, 11, 24, 10, tzinfo=UTC)
    for tag in range(1, 8):
        deliver(d, tag, wire.Reading(f"house-{tag}", t0 + timedelta(seconds=10), 100.0, tag))
    # flush_interval is 10 s: only the batch size triggers these commits
    assert recorder.acks == [2, 4, 6]
    assert (tmp_path / "csv/house-6/2026-11-24.csv").read_text().count("\n") == 2
    # the seventh is buffered, not yet written (its file is created, still empty)
    assert (tmp_path / "csv/house-7/2026-11-24.csv").read_text() == ""
