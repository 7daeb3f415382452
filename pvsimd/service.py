"""pvsimd's lifecycle: connect and consume (ready: consuming), write rows, flush, then
acknowledge; reconnect with backoff when the broker goes away; on stop, cancel the
consumer, flush and acknowledge what was written, close the files."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from pika.spec import Basic, BasicProperties

from pvsim import wire
from pvsim.broker import BrokerSettings
from pvsim.lifecycle import Daemon, StartupError
from pvsim.reconnect import ConnectionLost, ReconnectPolicy
from pvsimd.consumer import Consumer
from pvsimd.day_files import DayFiles
from pvsimd.pv_model import DayCurve
from pvsimd.settings import SCHEMA

log = logging.getLogger("pvsimd")


class PvSimDaemon(Daemon):
    """Consume meter readings, add simulated PV power, append one CSV row per reading."""

    name = "pvsimd"
    schema = SCHEMA

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)
        site, output = self.config["site"], self.config["output"]
        self.broker = BrokerSettings.from_section(self.config["broker"])
        self.queue: str = self.config["broker"]["queue"]
        self.tz = site["timezone"]
        self.pv = DayCurve(longitude=site["longitude"])
        self.files = DayFiles(
            output["directory"],
            self.tz,
            fsync=output["fsync"] == "batch",
            max_open=output["max_open_files"],
        )
        self.flush_interval: float = output["flush_interval"]
        self.ack_batch = max(1, self.config["broker"]["prefetch"] // 2)
        self.policy = ReconnectPolicy(
            self.broker.retry_initial,
            self.broker.retry_max,
            self.signals.stop,
            idle=self.heartbeat,
            what=f"broker {self.broker.display_url}",
        )
        self.consumer: Consumer | None = None
        self.connected_since: float | None = None
        self._unacked = 0
        self._last_tag = 0
        self._last_commit = time.monotonic()
        self._storage_error: str | None = None
        self.rows = 0
        self.duplicates = 0
        self.rejected = 0
        self.last_reading_us: int | None = None
        self._day = ""
        self.rows_today = 0
        self._draining = False
        self._handled_in_session = 0

    # --- lifecycle ---------------------------------------------------------------------

    def connect(self) -> bool:
        directory = self.files.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create the output directory {directory}: {exc}") from None
        return self._connect()

    def _connect(self) -> bool:
        consumer = self.policy.call(self._open_session)
        if consumer is None:
            return False
        self.consumer = consumer
        self.connected_since = time.time()
        self._handled_in_session = 0
        log.info("consuming from queue %s on %s", self.queue, self.broker.display_url)
        return True

    def run(self) -> None:
        while True:
            try:
                self.consumer.run()
                return  # paused: stop requested
            except ConnectionLost as exc:
                self.policy.lost(exc, healthy=self._session_was_healthy())
                self._forget_unacked()
                self.consumer = None
                self.connected_since = None
            if self.signals.stop.is_set() or not self._connect():
                return

    def drain(self) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        self._draining = True
        consumer.cancel()
        try:
            consumer.run()
        except ConnectionLost as exc:
            log.warning("connection lost while stopping: %s", exc)
            self._forget_unacked()
            return
        self.commit()

    def stop(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close()
                self.consumer.run()
            except ConnectionLost:
                pass
        self.files.discard_unflushed()  # anything not acknowledged comes back from the broker
        self.files.close()

    # --- handling readings -------------------------------------------------------------

    def _open_session(self) -> Consumer:
        consumer = Consumer(
            self.broker,
            self.queue,
            self.config["broker"]["prefetch"],
            self.handle,
            tick=self._tick,
            tick_interval=min(self.flush_interval, 0.1),
        )
        consumer.connect()
        return consumer

    def handle(self, method: Basic.Deliver, _props: BasicProperties, body: bytes) -> None:
        tag = method.delivery_tag
        try:
            reading = wire.decode(body)
            if method.routing_key != reading.routing_key:
                raise wire.InvalidReading(
                    f"routing key does not match meter_id {reading.meter_id!r}"
                )
        except wire.InvalidReading as exc:
            self.rejected += 1
            log.warning("rejected a message with routing key %r: %s", method.routing_key, exc)
            self.consumer.reject(tag)
            return
        if self.files.write(reading, self.pv.power_w(reading.ts)):
            self.rows += 1
            self._count_today(reading)
        else:
            self.duplicates += 1
            log.debug("dropped a repeat of %s at %s", reading.meter_id, wire.format_ts(reading.ts))
        self.last_reading_us = reading.ts_us
        self._handled_in_session += 1
        self._unacked += 1
        self._last_tag = tag
        if self._unacked >= self.ack_batch:
            self.commit()

    def _session_was_healthy(self) -> bool:
        """Handled readings, or lived longer than the longest backoff delay."""
        lived = time.time() - (self.connected_since or time.time())
        return self._handled_in_session > 0 or lived > self.broker.retry_max

    def _count_today(self, reading: wire.Reading) -> None:
        day = reading.ts.astimezone(self.tz).date().isoformat()
        if day != self._day:
            if day >= datetime.now(self.tz).date().isoformat():
                self._day, self.rows_today = day, 0
        if day == self._day:
            self.rows_today += 1

    def commit(self) -> None:
        """Flush the written rows, then acknowledge their messages (multiple=True)."""
        self._last_commit = time.monotonic()
        if self._unacked == 0 or self.consumer is None:
            return
        try:
            self.files.flush()
        except OSError as exc:
            self._storage_error = str(exc)
            log.error("cannot write CSV files: %s; readings stay in the broker", exc)
            self._forget_unacked()
            self.consumer.fail(f"cannot write CSV files ({exc.strerror or exc})")
            return
        if self._storage_error is not None:
            log.warning("CSV files writable again")
            self._storage_error = None
        self.consumer.ack_upto(self._last_tag)
        self._unacked = 0

    def _forget_unacked(self) -> None:
        """The broker redelivers what we did not acknowledge; drop our buffered rows."""
        self.files.discard_unflushed()
        self._unacked = 0

    def _tick(self) -> None:
        self.heartbeat()
        consumer = self.consumer
        if consumer is None:
            return
        if time.monotonic() - self._last_commit >= self.flush_interval:
            self.commit()
        if self.signals.stop.is_set() and not self._draining:
            consumer.pause()

    def status(self) -> str:
        if self.consumer is not None and self.connected_since is not None:
            link = f"consuming {self.queue} since {_hhmmss(self.connected_since)}"
        elif self.policy.retrying_since is not None:
            link = f"broker unreachable, retrying since {_hhmmss(self.policy.retrying_since)}"
        else:
            link = "connecting"
        last = self.last_reading_us
        age = "none yet" if last is None else f"{time.time() - last / 1e6:.0f} s old"
        text = (
            f"{link}; {self.rows_today} rows today, {self.rows} since start, "
            f"{self.duplicates} repeats dropped, {self.rejected} rejected; last reading {age}"
        )
        if self._storage_error:
            text = f"CSV WRITE FAILING ({self._storage_error}); " + text
        return text


def _hhmmss(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
