"""A PvSimDaemon without a broker, for unit tests of its commits: deliveries are handed
to ``handle`` directly and acknowledgements recorded."""

from __future__ import annotations

import argparse
from pathlib import Path

import pika

from pvsim import config as c
from pvsim import wire
from pvsim.notify import Notifier
from pvsim.signals import Signals
from pvsimd.service import PvSimDaemon
from pvsimd.settings import SCHEMA


class AckRecorder:
    """Stands in for the consumer: records ``ack_upto``; sync results are collected by
    the test (``wake`` does nothing)."""

    def __init__(self) -> None:
        self.acks: list[int] = []

    def ack_upto(self, tag: int) -> None:
        self.acks.append(tag)

    def wake(self, callback) -> None:  # noqa: ANN001
        pass


def daemon(tmp_path: Path, prefetch: int, fsync: str) -> PvSimDaemon:
    """pvsimd with ``flush_interval = 10`` (only the batch size triggers commits)."""
    ini = tmp_path / "pvsimd.ini"
    ini.write_text(
        "[site]\nlatitude = 52.5\nlongitude = 13.4\ntimezone = Europe/Berlin\n"
        f"[broker]\nprefetch = {prefetch}\n"
        f"[output]\ndirectory = {tmp_path / 'csv'}\nfsync = {fsync}\nflush_interval = 10\n"
        "[security]\nverify_sender = no\n"
    )
    return PvSimDaemon(c.load(ini, SCHEMA), Signals(), Notifier(), argparse.Namespace())


def deliver(d: PvSimDaemon, tag: int, reading: wire.Reading) -> None:
    method = pika.spec.Basic.Deliver(
        delivery_tag=tag, routing_key=wire.routing_key(reading.meter_id)
    )
    d.handle(None, method, pika.BasicProperties(), wire.encode(reading))
