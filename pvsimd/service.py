"""pvsimd's lifecycle: connect and consume (ready: consuming), write rows, flush, then
acknowledge; reconnect with backoff when the broker goes away; on stop, cancel the
consumer, flush and acknowledge what was written, close the files.

Every delivery is either *processed* (its row buffered, or the message dead-lettered) or
*held*.  Acknowledgements (multiple=True) cover processed deliveries only, and only once
their rows are flushed and their dead letters confirmed.  When the CSV files cannot be
written (disk full, directory unwritable) nothing more is acknowledged: rows stay
buffered, later deliveries are held, the prefetch limit stops the broker from sending
more, and a retry every second resumes the work when writing succeeds again — one ERROR
when the episode starts, one WARNING when it ends, and STATUS says so meanwhile.  Held
messages are never requeued, so a long episode does not use up their delivery limit.
"""

from __future__ import annotations

import logging
import resource
import time
from collections import deque
from datetime import datetime

from pika.spec import Basic, BasicProperties

from pvsim import wire
from pvsim.broker import BrokerSettings
from pvsim.broker_link import BrokerLink, format_time
from pvsim.lifecycle import Daemon, StartupError
from pvsim.reconnect import ConnectionLost
from pvsimd.consumer import Consumer
from pvsimd.day_files import DayFiles
from pvsimd.pv_model import PvSystem
from pvsimd.senders import SenderCheck
from pvsimd.settings import SCHEMA

log = logging.getLogger("pvsimd")

STORAGE_RETRY_S = 1.0
DEPTH_INTERVAL_S = 5.0  # how often STATUS asks the broker for the queue's backlog

Delivery = tuple[Basic.Deliver, BasicProperties, bytes]
DESCRIPTOR_RESERVE = 64  # for the broker connection, the journal, the config and Python


def descriptor_budget(max_open_files: int) -> int:
    """``max_open_files``, lowered (with a WARNING) to fit the process's descriptor limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or max_open_files + DESCRIPTOR_RESERVE <= soft:
        return max_open_files
    budget = max(16, soft - DESCRIPTOR_RESERVE)
    log.warning(
        "max_open_files = %d does not fit the descriptor limit %d; using %d "
        "(raise LimitNOFILE= with systemctl edit pvsimd)",
        max_open_files,
        soft,
        budget,
    )
    return budget


class PvSimDaemon(Daemon):
    """Consume meter readings, add simulated PV power, append one CSV row per reading."""

    name = "pvsimd"
    schema = SCHEMA

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)
        site, output, broker = self.config["site"], self.config["output"], self.config["broker"]
        self.broker = BrokerSettings.from_section(broker)
        self.queue: str = broker["queue"]
        security = self.config["security"]
        self.senders = SenderCheck(security["sender_map"]) if security["verify_sender"] else None
        self.tz = site["timezone"]
        self.pv = PvSystem.from_config(site, self.config["pv"])
        self.files = DayFiles(
            output["directory"],
            self.tz,
            fsync=output["fsync"],
            max_open=descriptor_budget(output["max_open_files"]),
        )
        self.flush_interval: float = output["flush_interval"]
        self.ack_batch = max(1, broker["prefetch"] // 2)
        self.link = BrokerLink(self.broker, self.signals.stop, idle=self.heartbeat)
        self.consumer: Consumer | None = None
        self._draining = False
        # acknowledgement state of the current session
        self._unacked = 0  # processed deliveries not yet acknowledged
        self._last_tag = 0  # delivery tag of the newest processed delivery
        self._held: deque[Delivery] = deque()
        self._dead_letters_unconfirmed: set[int] = set()
        self._last_commit = time.monotonic()
        self._depth_checked = float("-inf")
        # storage failure episode
        self._storage_error: str | None = None
        self._storage_failing_since: float | None = None
        self._storage_retry_at = 0.0
        # figures
        self.rows = 0
        self.duplicates = 0
        self.rejected = 0
        self.last_reading: datetime | None = None
        self._today = ""  # the site's date, updated every tick
        self._day = ""
        self.rows_today = 0
        self._update_today()

    # --- lifecycle ---------------------------------------------------------------------

    def connect(self) -> bool:
        directory = self.files.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create the output directory {directory}: {exc}") from None
        return self._connect()

    def _connect(self) -> bool:
        consumer = self.link.open(self._open_session)
        if consumer is None:
            return False
        self.consumer = consumer
        log.info("consuming from queue %s on %s", self.queue, self.broker.display_url)
        return True

    def run(self) -> None:
        while True:
            try:
                self.consumer.run()
                return  # paused: stop requested
            except ConnectionLost as exc:
                self.link.lost(exc)
                self._forget_unacked()
                self.consumer = None
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
            self.commit(force=True)
            if self._dead_letters_unconfirmed and consumer.connection.is_open:
                consumer.run()  # the confirm callback commits and pauses
        except ConnectionLost as exc:
            log.warning("connection lost while stopping: %s", exc)
            self._forget_unacked()

    def stop(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close()
                self.consumer.run()
            except ConnectionLost:
                pass
        self.files.discard_unflushed()  # what was not acknowledged comes back from the broker
        self.files.close()

    # --- handling deliveries -----------------------------------------------------------

    def _open_session(self) -> Consumer:
        broker = self.config["broker"]
        consumer = Consumer(
            self.broker,
            self.queue,
            broker["prefetch"],
            self.handle,
            tick=self._tick,
            tick_interval=min(self.flush_interval, 0.1),
            dead_letter_queue=broker["dead_letter_queue"],
            delivery_limit=broker["delivery_limit"],
            on_dead_letter_confirmed=self._on_dead_letter_confirmed,
        )
        consumer.connect()
        return consumer

    def handle(self, method: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
        if self._held or not self._process(method, props, body):
            self._held.append((method, props, body))

    def _process(self, method: Basic.Deliver, props: BasicProperties, body: bytes) -> bool:
        """Buffer the delivery's row or dead-letter it; False when storage failed (held)."""
        try:
            reading = wire.decode(body)
            if method.routing_key != reading.routing_key:
                raise wire.InvalidReading(
                    f"routing key does not match meter_id {reading.meter_id!r}"
                )
            if self.senders is not None:  # [security] verify_sender
                if forged := self.senders.forged(props.user_id, reading.meter_id):
                    raise wire.InvalidReading(forged)
        except wire.InvalidReading as exc:
            self._dead_letter(method, props, body, str(exc))
            return True
        try:
            added = self.files.write(reading, self.pv.power_w(reading.ts))
        except OSError as exc:
            self._storage_failed(exc)
            return False
        if added:
            self.rows += 1
            day = self.files.day_of(reading.ts)
            if day == self._day:
                self.rows_today += 1
            elif day >= self._today:
                self._day, self.rows_today = day, 1
        else:
            self.duplicates += 1
            log.debug("dropped a repeat of %s at %s", reading.meter_id, wire.format_ts(reading.ts))
        self.last_reading = reading.ts
        self._processed(method.delivery_tag)
        return True

    def _dead_letter(
        self, method: Basic.Deliver, props: BasicProperties, body: bytes, reason: str
    ) -> None:
        self.rejected += 1
        log.warning(
            "invalid message with routing key %r sent to %s: %s",
            method.routing_key,
            self.config["broker"]["dead_letter_queue"],
            reason,
        )
        tag = self.consumer.dead_letter(body, props, method.routing_key, reason)
        self._dead_letters_unconfirmed.add(tag)
        self._processed(method.delivery_tag)

    def _on_dead_letter_confirmed(self, tag: int, multiple: bool, ok: bool) -> None:
        if not ok:
            self.consumer.fail("the broker refused a dead letter; the message is redelivered")
            return
        if multiple:
            self._dead_letters_unconfirmed = {t for t in self._dead_letters_unconfirmed if t > tag}
        else:
            self._dead_letters_unconfirmed.discard(tag)
        if not self._dead_letters_unconfirmed:
            self.commit(force=True)
            if self._draining:
                self.consumer.pause()

    def _processed(self, delivery_tag: int) -> None:
        self._unacked += 1
        self._last_tag = delivery_tag
        if self._unacked >= self.ack_batch:
            self.commit(force=True)

    def commit(self, force: bool = False) -> None:
        """Flush the buffered rows, then acknowledge every processed delivery."""
        now = time.monotonic()
        if not force and now - self._last_commit < self.flush_interval:
            return
        self._last_commit = now
        if self._unacked == 0 or self.consumer is None:
            return
        if self._storage_error is not None and now < self._storage_retry_at:
            return
        try:
            self.files.flush()
        except OSError as exc:
            self._storage_failed(exc)
            return
        self._storage_recovered()
        if self._dead_letters_unconfirmed:
            return  # acknowledged when the broker confirms the dead letters
        self.consumer.ack_upto(self._last_tag)
        self.link.did_work(self._unacked)
        self._unacked = 0

    # --- storage failure episodes ------------------------------------------------------

    def _storage_failed(self, exc: OSError) -> None:
        if self._storage_error is None:
            self._storage_failing_since = time.time()
            log.error(
                "cannot write CSV files under %s: %s; readings stay in the broker, "
                "retrying every %g s",
                self.files.directory,
                exc,
                STORAGE_RETRY_S,
            )
        self._storage_error = exc.strerror or str(exc)
        self._storage_retry_at = time.monotonic() + STORAGE_RETRY_S

    def _storage_recovered(self) -> None:
        if self._storage_error is None:
            return
        lasted = time.time() - (self._storage_failing_since or time.time())
        log.warning("CSV files writable again after %.0f s; resuming", lasted)
        self._storage_error = None
        self._storage_failing_since = None

    def _retry_held(self) -> None:
        """During a storage failure: retry the flush, then the held deliveries in order."""
        if time.monotonic() < self._storage_retry_at:
            return
        self.commit(force=True)
        while self._storage_error is None and self._held:
            method, props, body = self._held[0]
            if not self._process(method, props, body):
                return
            self._held.popleft()

    def _forget_unacked(self) -> None:
        """The broker redelivers what we did not acknowledge; drop our side of it."""
        self.files.discard_unflushed()
        self._unacked = 0
        self._held.clear()
        self._dead_letters_unconfirmed.clear()

    # --- periodic work -----------------------------------------------------------------

    def _tick(self) -> None:
        self.heartbeat()
        self._update_today()
        consumer = self.consumer
        if consumer is None:
            return
        if self._storage_error is not None:
            self._retry_held()
        else:
            self.commit()
        now = time.monotonic()
        if now - self._depth_checked >= DEPTH_INTERVAL_S:
            self._depth_checked = now
            consumer.check_depth()
        if self.signals.stop.is_set() and not self._draining:
            consumer.pause()

    def _update_today(self) -> None:
        self._today = datetime.now(self.tz).date().isoformat()
        if self._day < self._today:  # "rows today" counts the newest day from today on
            self._day, self.rows_today = self._today, 0

    def status(self) -> str:
        link = self.link.describe(f"consuming {self.queue}")
        last = self.last_reading
        age = "none yet" if last is None else f"{time.time() - last.timestamp():.0f} s old"
        depth = self.consumer.depth if self.consumer is not None else None
        backlog = "?" if depth is None else str(depth)
        text = (
            f"{link}; {self.rows_today} rows today, {self.rows} since start, "
            f"{self.duplicates} repeats dropped, {self.rejected} invalid; "
            f"backlog {backlog} in the queue; last reading {age}"
        )
        if self._storage_error is not None:
            since = format_time(self._storage_failing_since or time.time())
            text = (
                f"CSV WRITES FAILING since {since} ({self._storage_error}), "
                f"{self._unacked + len(self._held)} readings waiting; " + text
            )
        return text
