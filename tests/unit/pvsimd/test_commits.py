"""When pvsimd commits: after a quarter of the prefetch window, without waiting for the
flush interval, so that acknowledgements reach the broker while three quarters of the
window are still in hand."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pika

from pvsim import config as c
from pvsim import wire
from pvsim.notify import Notifier
from pvsim.signals import Signals
from pvsimd.service import PvSimDaemon, ack_batch
from pvsimd.settings import SCHEMA


class AckRecorder:
    def __init__(self) -> None:
        self.acks: list[int] = []

    def ack_upto(self, tag: int) -> None:
        self.acks.append(tag)


def daemon(tmp_path, prefetch: int) -> PvSimDaemon:
    ini = tmp_path / "pvsimd.ini"
    ini.write_text(
        "[site]\nlatitude = 52.5\nlongitude = 13.4\ntimezone = Europe/Berlin\n"
        f"[broker]\nprefetch = {prefetch}\n"
        f"[output]\ndirectory = {tmp_path / 'csv'}\nfsync = off\nflush_interval = 10\n"
        "[security]\nverify_sender = no\n"
    )
    return PvSimDaemon(c.load(ini, SCHEMA), Signals(), Notifier(), argparse.Namespace())


def test_ack_batch_is_a_quarter_of_the_prefetch():
    assert [ack_batch(p) for p in (1, 3, 4, 8, 1000)] == [1, 1, 1, 2, 250]


def test_deliveries_are_acknowledged_every_quarter_window(tmp_path):
    d = daemon(tmp_path, prefetch=8)
    d.consumer = recorder = AckRecorder()
    t0 = datetime(2026, 11, 24, 10, tzinfo=UTC)
    for tag in range(1, 8):
        reading = wire.Reading(f"house-{tag}", t0 + timedelta(seconds=10), 100.0, tag)
        method = pika.spec.Basic.Deliver(
            delivery_tag=tag, routing_key=wire.routing_key(reading.meter_id)
        )
        d.handle(None, method, pika.BasicProperties(), wire.encode(reading))
    # flush_interval is 10 s: only the batch size triggers these commits
    assert recorder.acks == [2, 4, 6]
    assert (tmp_path / "csv/house-6/2026-11-24.csv").read_text().count("\n") == 2
    # the seventh is buffered, not yet written (its file is created, still empty)
    assert (tmp_path / "csv/house-7/2026-11-24.csv").read_text() == ""
