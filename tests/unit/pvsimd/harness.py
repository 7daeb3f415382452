"""A PvSimDaemon without a broker, for unit tests of its commits: deliveries are handed
to ``handle`` directly and acknowledgements recorded; and day files at a site."""

from __future__ import annotations

import argparse
from datetime import datetime, tzinfo
from pathlib import Path

import pika

from pvsim import config as c
from pvsim import wire
from pvsim.notify import Notifier
from pvsim.signals import Signals
from pvsimd.day_files import DayFiles
from pvsimd.moments import Moment, Moments
from pvsimd.service import PvSimDaemon
from pvsimd.settings import SCHEMA


class AckRecorder:
    """Stands in for the consumer: records ``ack_upto``, dead letters (their publish tags
    count from 1), pauses and failures; sync results are collected by the test (``wake``
    does nothing)."""

    def __init__(self) -> None:
        self.acks: list[int] = []
        self.dead_letters: list[tuple[bytes, str, str]] = []  # body, routing key, reason
        self.paused = 0
        self.failed: list[str] = []
        self.depth = None

    def ack_upto(self, tag: int) -> None:
        self.acks.append(tag)

    def wake(self, callback) -> None:  # noqa: ANN001
        pass

    def dead_letter(self, body: bytes, _props: object, routing_key: str, reason: str) -> int:
        self.dead_letters.append((body, routing_key, reason))
        return len(self.dead_letters)

    def pause(self) -> None:
        self.paused += 1

    def fail(self, reason: str) -> None:
        self.failed.append(reason)

    def check_depth(self) -> None:
        pass


def daemon(
    tmp_path: Path,
    prefetch: int,
    fsync: str,
    security: str = "verify_sender = no",
    broker: str = "",
    name: str = "pvsimd",
) -> PvSimDaemon:
    """pvsimd with ``flush_interval = 10`` (only the batch size triggers commits); extra
    ``[broker]`` lines in ``broker`` (e.g. shards)."""
    ini = tmp_path / f"{name}.ini"
    ini.write_text(
        "[site]\nlatitude = 52.5\nlongitude = 13.4\ntimezone = Europe/Berlin\n"
        f"[broker]\nprefetch = {prefetch}\n{broker}"
        f"[output]\ndirectory = {tmp_path / 'csv'}\nfsync = {fsync}\nflush_interval = 10\n"
        f"[security]\n{security}\n"
    )
    return PvSimDaemon(c.load(ini, SCHEMA), Signals(), Notifier(), argparse.Namespace())


def deliver(
    d: PvSimDaemon,
    tag: int,
    reading: wire.Reading | bytes,
    routing_key: str | None = None,
    user_id: str | None = None,
) -> None:
    """Hand a delivery to ``d`` as pika would (a reading, or any body)."""
    body = reading if isinstance(reading, bytes) else wire.encode(reading)
    if routing_key is None:
        routing_key = wire.routing_key(reading.meter_id)
    method = pika.spec.Basic.Deliver(delivery_tag=tag, routing_key=routing_key)
    handle = d.handle if d.claim is None else d.handle_shard  # as open_session picks
    handle(None, method, pika.BasicProperties(user_id=user_id), body)


class SiteDayFiles(DayFiles):
    """DayFiles at a site with timezone ``tz``, buffering readings as pvsimd does (their
    moment computed with the PV power the test gives)."""

    def __init__(self, directory: Path, tz: tzinfo, **kwargs: object):
        super().__init__(directory, **kwargs)
        self.tz = tz

    def moment(self, ts: datetime, pv_w: float = 0.0) -> Moment:
        return Moments(self.tz, lambda _ts: pv_w).of(ts)

    def add(self, reading: wire.Reading, pv_w: float) -> bool:
        """Buffer ``reading``'s row with PV power ``pv_w``; False for a repeat."""
        return self.buffer(
            reading.meter_id, self.moment(reading.ts, pv_w), reading.power_w, reading.seq
        )
