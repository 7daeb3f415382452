"""pvsimd's lifecycle: connect and consume (ready: consuming), write rows, make them
durable, then acknowledge; reconnect with backoff when the broker goes away; on stop,
cancel the consumer, write, sync and acknowledge what was processed, close the files.

Every delivery is either *processed* (its row buffered, or the message dead-lettered) or
*held*.  Acknowledgements (multiple=True) cover processed deliveries only, and only once
their rows are written and synced and their dead letters confirmed.  Commits happen
every ``flush_interval`` or after ``prefetch / 4`` deliveries (:func:`ack_batch`): the
rows are written in the I/O loop, and with ``fsync = batch`` the sync runs in a thread of its own
(:mod:`pvsimd.syncer`) while the loop takes the next deliveries; the acknowledgement
follows when the sync reports back.  Commits triggered by the batch size (a backlog)
append to the journal and sync only that file (:mod:`pvsimd.journal`); the others are
checkpoints that write every buffered row.  A failed sync rolls the unsynced rows back into
the buffers (:meth:`DayFiles.roll_back_unsynced`) and starts a storage failure episode.

When the CSV files cannot be written or synced (disk full, directory unwritable) nothing
more is acknowledged: rows stay buffered, later deliveries are held, the prefetch limit
stops the broker from sending more, and a retry every second resumes the work when
writing succeeds again — one ERROR when the episode starts, one WARNING when it ends,
and STATUS says so meanwhile.  Held messages are never requeued, so a long episode does
not use up their delivery limit.
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
from pvsim.topology import Topology
from pvsimd.consumer import Consumer
from pvsimd.day_files import DayFiles
from pvsimd.pv_model import PvSystem
from pvsimd.senders import SenderCheck
from pvsimd.settings import SCHEMA
from pvsimd.syncer import Syncer

log = logging.getLogger("pvsimd")

STORAGE_RETRY_S = 1.0
DEPTH_INTERVAL_S = 5.0  # how often STATUS asks the broker for the queue's backlog

SETTLE_TIMEOUT_S = 15.0  # waiting for a sync in flight when stopping or reconnecting

Delivery = tuple[Basic.Deliver, BasicProperties, bytes]
# what a sync request carries back: (session, sync epoch, write generation, delivery tag)
SyncToken = tuple[int, int, int, int]
DESCRIPTOR_RESERVE = 64  # for the broker connection, the journal, the config and Python


def ack_batch(prefetch: int) -> int:
    """Deliveries between commits when they arrive faster than ``flush_interval``.

    A quarter of the prefetch window: the acknowledgement follows a write, a sync and
    then the broker's own turnaround (a quorum queue logs the settlement before it sends
    more), about 10 ms together, and the three quarters still in hand keep the loop busy
    meanwhile.  With half the window the loop ran dry before every second commit (about
    230 waits of 5 ms in a 200 000-reading drain, a quarter of its time)."""
    return max(1, prefetch // 4)


def descriptor_budget(max_open_files: int) -> int:
    """``max_open_files``, after raising the soft descriptor limit towards the hard one
    where needed; lowered (with a WARNING) when it still does not fit."""
    need = max_open_files + DESCRIPTOR_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or need <= soft:
        return max_open_files
    try:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    except (OSError, ValueError):  # e.g. setrlimit filtered by the unit's SystemCallFilter=
        pass
    if need <= soft:
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
        self.topology = Topology(
            exchange=broker["exchange"],
            queue=broker["queue"],
            dead_letter_queue=broker["dead_letter_queue"],
            delivery_limit=broker["delivery_limit"],
        )
        self.queue = self.topology.queue
        security = self.config["security"]
        self.senders = SenderCheck(security["sender_map"]) if security["verify_sender"] else None
        self.tz = site["timezone"]
        self.pv = PvSystem.from_config(site, self.config["pv"])
        self.files = DayFiles(
            output["directory"],
            self.tz,
            fsync=output["fsync"],
            max_open=descriptor_budget(output["max_open_files"]),
            journal=True,
        )
        self.flush_interval: float = output["flush_interval"]
        self.ack_batch = ack_batch(broker["prefetch"])
        self.link = BrokerLink(self.broker, self.signals.stop, idle=self.heartbeat)
        self.consumer: Consumer | None = None
        self.syncer: Syncer[SyncToken] | None = None  # fsync = batch: started by connect()
        self._draining = False
        # acknowledgement state of the current session (delivery tags, consecutive)
        self._session = 0
        self._last_tag = 0  # the newest processed delivery
        self._submitted_tag = 0  # the newest whose rows were written and sent to sync
        self._durable_tag = 0  # the newest whose rows are synced
        self._acked_tag = 0  # the newest acknowledged
        self._held: deque[Delivery] = deque()
        self._dead_letters_unconfirmed: dict[int, int] = {}  # publish tag -> delivery tag
        self._sync_epoch = 0  # bumped by a failed sync: older results no longer count
        self._checkpoint_due = False  # the next commit writes the day files, not the journal
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
            if self.files.fsync == "batch":
                self.files.sync_target()
        except OSError as exc:
            raise StartupError(f"cannot open the output directory {directory}: {exc}") from None
        if self.files.journal is not None:
            try:
                added, repeats = self.files.replay_journal()
            except OSError as exc:
                raise StartupError(
                    f"cannot write the rows of the journal {self.files.journal.path} "
                    f"to their day files: {exc}"
                ) from None
            if added or repeats:
                log.info(
                    "journal: %d rows of the last run written to their day files "
                    "(%d were there already)",
                    added,
                    repeats,
                )
        if self.files.fsync == "batch" and self.syncer is None:
            self.syncer = Syncer(self.files.sync, self._wake_for_syncs)
            log.info(
                "CSV files under %s: synced with one syncfs per batch, up to %d kept open",
                directory,
                self.files.max_open,
            )
        elif self.syncer is None:
            log.info(
                "CSV files under %s: fsync = %s, up to %d kept open",
                directory,
                self.files.fsync,
                self.files.max_open,
            )
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
            self._settle_syncs()
            if self._dead_letters_unconfirmed and consumer.connection.is_open:
                consumer.run()  # the confirm callback acknowledges and pauses
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
        if self.syncer is not None:
            self.syncer.stop(SETTLE_TIMEOUT_S)
        self.files.discard_unflushed()  # what was not acknowledged comes back from the broker
        self.files.close()

    # --- handling deliveries -----------------------------------------------------------

    def _open_session(self) -> Consumer:
        consumer = Consumer(
            self.broker,
            self.topology,
            self.config["broker"]["prefetch"],
            self.handle,
            tick=self._tick,
            tick_interval=min(self.flush_interval, 0.1),
            on_dead_letter_confirmed=self._on_dead_letter_confirmed,
        )
        consumer.connect()
        return consumer

    def handle(
        self, _channel: object, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        """pika's on_message callback (every delivery runs through here)."""
        if self._held or not self._process(method, props, body):
            self._held.append((method, props, body))

    def _process(self, method: Basic.Deliver, props: BasicProperties, body: bytes) -> bool:
        """Buffer the delivery's row or dead-letter it; False when storage failed (held)."""
        try:
            reading = wire.decode(body)
            meter_id = reading.meter_id
            if method.routing_key != wire.ROUTING_PREFIX + meter_id:
                raise wire.InvalidReading(f"routing key does not match meter_id {meter_id!r}")
            senders = self.senders
            if senders is not None and not senders.allowed(props.user_id, meter_id):
                raise wire.InvalidReading(senders.forged(props.user_id, meter_id))  # verify_sender
        except wire.InvalidReading as exc:
            self._dead_letter(method, props, body, str(exc))
            return True
        files = self.files
        try:
            added = files.write(reading, self.pv.power_w(reading.ts))
        except OSError as exc:
            self._storage_failed(exc)
            return False
        if added:
            self.rows += 1
            day = files.last_day
            if day == self._day:
                self.rows_today += 1
            elif day >= self._today:
                self._day, self.rows_today = day, 1
        else:
            self.duplicates += 1
            log.debug("dropped a repeat of %s at %s", meter_id, wire.format_ts(reading.ts))
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
        self._dead_letters_unconfirmed[tag] = method.delivery_tag
        self._processed(method.delivery_tag)

    def _on_dead_letter_confirmed(self, tag: int, multiple: bool, ok: bool) -> None:
        if not ok:
            self.consumer.fail("the broker refused a dead letter; the message is redelivered")
            return
        unconfirmed = self._dead_letters_unconfirmed
        if multiple:
            for t in [t for t in unconfirmed if t <= tag]:
                del unconfirmed[t]
        else:
            unconfirmed.pop(tag, None)
        self._try_ack()
        if self._draining and not unconfirmed:
            self.consumer.pause()

    def _processed(self, delivery_tag: int) -> None:
        self._last_tag = delivery_tag
        if delivery_tag - self._submitted_tag >= self.ack_batch:
            self.commit(force=True, backlog=True)

    def commit(self, force: bool = False, backlog: bool = False) -> bool:
        """Write the buffered rows and have them synced; the deliveries processed so far
        are acknowledged once that is done.  False when writing failed.

        A ``backlog`` commit (``ack_batch`` deliveries before the flush interval is up)
        appends to the journal instead, unless a checkpoint is due (see
        :mod:`pvsimd.journal`); every other commit is a checkpoint."""
        now = time.monotonic()
        if not force and now - self._last_commit < self.flush_interval:
            return True
        self._last_commit = now
        files = self.files
        if self.consumer is None:
            return True
        if self._last_tag == self._submitted_tag and (backlog or not files.journaled):
            return True  # nothing new, and no journaled rows owed to their day files
        journal = (
            backlog
            and files.journal is not None
            and not self._checkpoint_due
            and not files.journal.due(now)
        )
        try:
            generation = files.journal_out(now) if journal else files.write_out()
        except OSError as exc:
            self._storage_failed(exc)
            return False
        if not journal:
            self._checkpoint_due = False
        token = (self._session, self._sync_epoch, generation, self._last_tag)
        self._submitted_tag = self._last_tag
        if self.syncer is not None and (journal or files.unsynced):
            self.syncer.request(token)
        else:  # fsync = file or off: write_out made them as durable as they get
            self._synced(token, None)
        return True

    def _wake_for_syncs(self) -> None:
        """Called in the sync thread after each sync: collect it in the I/O loop."""
        consumer = self.consumer
        if consumer is not None:
            consumer.wake(self._collect_syncs)

    def _collect_syncs(self) -> None:
        if self.syncer is not None:
            for token, error in self.syncer.results():
                self._synced(token, error)

    def _settle_syncs(self) -> None:
        """Wait for the syncs in flight and take their results (stopping, reconnecting)."""
        if self.syncer is not None:
            if not self.syncer.wait_idle(SETTLE_TIMEOUT_S):
                log.warning("a sync of the CSV files is still running after %g s", SETTLE_TIMEOUT_S)
            self._collect_syncs()

    def _synced(self, token: SyncToken, error: OSError | None) -> None:
        session, epoch, generation, tag = token
        if epoch != self._sync_epoch:
            return  # its rows were rolled back after an earlier failure and are written again
        if error is not None:
            self._sync_epoch += 1
            self.files.roll_back_unsynced()
            self._storage_failed(error)
            if session == self._session:
                self._submitted_tag = self._durable_tag  # to be written and synced again
            return
        self.files.mark_synced(generation)
        self._storage_recovered()
        if session == self._session and tag > self._durable_tag:
            self._durable_tag = tag
            self._try_ack()

    def _try_ack(self) -> None:
        """Acknowledge every durable delivery not behind an unconfirmed dead letter."""
        limit = self._durable_tag
        if self._dead_letters_unconfirmed:
            limit = min(limit, min(self._dead_letters_unconfirmed.values()) - 1)
        if limit > self._acked_tag and self.consumer is not None:
            self.consumer.ack_upto(limit)
            self.link.did_work(limit - self._acked_tag)
            self._acked_tag = limit

    # --- storage failure episodes ------------------------------------------------------

    def _storage_failed(self, exc: OSError) -> None:
        self._checkpoint_due = True  # what failed is written again, to the day files
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
        """During a storage failure: retry the writes every second, then the held
        deliveries in order."""
        if self._storage_error is not None:
            now = time.monotonic()
            if now < self._storage_retry_at:
                return
            self._storage_retry_at = now + STORAGE_RETRY_S
            if not self.commit(force=True):
                return
        while self._held:
            method, props, body = self._held[0]
            if not self._process(method, props, body):
                return
            self._held.popleft()

    def _forget_unacked(self) -> None:
        """The broker redelivers what we did not acknowledge; drop our side of it."""
        self._session += 1  # results of syncs still in flight no longer acknowledge
        self._settle_syncs()
        self.files.discard_unflushed()
        self._checkpoint_due = True
        self._last_tag = self._submitted_tag = self._durable_tag = self._acked_tag = 0
        self._held.clear()
        self._dead_letters_unconfirmed.clear()

    # --- periodic work -----------------------------------------------------------------

    def _tick(self) -> None:
        self.heartbeat()
        self._update_today()
        consumer = self.consumer
        if consumer is None:
            return
        self._collect_syncs()
        if self._storage_error is not None or self._held:
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
            waiting = self._last_tag - self._acked_tag + len(self._held)
            text = (
                f"CSV WRITES FAILING since {since} ({self._storage_error}), "
                f"{waiting} readings waiting; " + text
            )
        return text
