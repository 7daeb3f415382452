"""pvsimd's lifecycle and wiring: deliveries in, rows written and made durable, then
acknowledged.

    consumer ──► handle ──► decode, check ──► day files (buffer) ──┐
                                  └─► dead letter (confirmed)       │ commit
    consumer ◄── basic.ack ◄── acknowledgement record ◄── sync ◄────┘

Connect and consume (ready: consuming); every delivery goes through :meth:`handle`:
decoded against the per-reading context (:mod:`pvsimd.moments`), checked (routing key,
sender, not too far in the future), and its row buffered by the day files
(:mod:`pvsimd.day_files`) or the message dead-lettered.  :meth:`PvSimDaemon.commit`
writes the buffered rows — to the journal for a commit due by the batch size before
``flush_interval`` is up (a backlog), else to the day files (a checkpoint) — and asks
the sync thread (:mod:`pvsimd.syncer`, ``fsync = batch``) to make them durable.  Which
deliveries that acknowledges is the acknowledgement record's business
(:mod:`pvsimd.acks`, where the rules are); this class only carries events to it and its
answers to the broker.  On stop: cancel the consumer, commit, wait for the sync,
acknowledge, close the files.

Shards (``[broker] shards`` > 1, docs/scaling.md): the output directory is shared with
the other shards' pvsimd and the standbys, the day files are written under their locks
(:mod:`pvsimd.day_files`), and the journal is the shard's own, owned by whichever pvsimd
holds the shard's claim (:mod:`pvsimd.shard_claim`).  Deliveries go through
:meth:`PvSimDaemon.handle_shard`, which claims the shard at the first one (a standby
becoming active) and holds them while another pvsimd still has it; the claim is let go
when the session ends.  Until its first delivery a session is *standby* in STATUS.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

from pika.spec import Basic, BasicProperties

from pvsim import wire
from pvsim.config import ConfigError
from pvsim.dirlock import DirectoryInUse, DirectoryLock
from pvsim.lifecycle import Daemon, StartupError
from pvsim.metrics import Value
from pvsim.reconnect import ConnectionLost
from pvsim.session_loop import format_time
from pvsim.topology import Topology
from pvsimd import metrics as pvsimd_metrics
from pvsimd.acks import Ack, AckRecord, SyncToken
from pvsimd.consumer import Consumer
from pvsimd.day_files import DayFiles
from pvsimd.future_limit import FutureLimit
from pvsimd.moments import Moments
from pvsimd.open_files import descriptor_budget
from pvsimd.pv_model import PvSystem
from pvsimd.senders import sender_check
from pvsimd.settings import SCHEMA, PvsimdConfig
from pvsimd.shard_claim import ShardClaim
from pvsimd.stats import ReadingStats
from pvsimd.syncer import Syncer

log = logging.getLogger("pvsimd")

STORAGE_RETRY_S = 1.0
DEPTH_INTERVAL_S = 5.0  # how often STATUS asks the broker for the queue's backlog
SETTLE_TIMEOUT_S = 15.0  # waiting for a sync in flight when stopping or reconnecting

Delivery = tuple[Basic.Deliver, BasicProperties, bytes]
# a sync request: the acknowledgement record's token and the commit log's generation
SyncRequest = tuple[SyncToken, int]


class Refused(wire.InvalidReading):
    """A valid reading pvsimd does not take: ``reason`` names why (``forged``,
    ``future``; see :data:`pvsimd.stats.DEAD_LETTER_REASONS`)."""

    def __init__(self, reason: str, text: str):
        super().__init__(text)
        self.reason = reason


def ack_batch(prefetch: int) -> int:
    """Deliveries between commits when they arrive faster than ``flush_interval``.

    A quarter of the prefetch window: the acknowledgement follows a write, a sync and
    then the broker's own turnaround (a quorum queue logs the settlement before it sends
    more), about 10 ms together, and the three quarters still in hand keep the loop busy
    meanwhile.  With half the window the loop ran dry before every second commit (about
    230 waits of 5 ms in a 200 000-reading drain, a quarter of its time)."""
    return max(1, prefetch // 4)


def exclusive_directory(output_directory: Path, topology: Topology) -> Path:
    """What one pvsimd must write alone — the one place that decides the lock's scope.

    Unsharded, the whole output directory: its day files (two writers appending to one
    file without the shared mode's locks interleave rows and repeat headers) and its
    journal ``.journal``; a second pvsimd there is refused at start (exit 75).  With
    shards the output directory is shared (every file written under its own lock), and
    what one pvsimd owns alone is its shard's journal, in ``<output>/.<shard queue>/``
    (meter ids never start with "."): claimed when the broker delivers to it
    (:mod:`pvsimd.shard_claim`), so that a standby starts and waits."""
    if not topology.sharded:
        return output_directory
    return output_directory / f".{topology.consumed}"


class PvSimDaemon(Daemon):
    """Consume meter readings, add simulated PV power, append one CSV row per reading."""

    name = "pvsimd"
    schema = SCHEMA
    metrics = pvsimd_metrics.METRICS

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)
        config: PvsimdConfig = self.config
        site, output = config.site, config.output
        self.topology = config.broker.topology
        self.senders = sender_check(config)
        self.pv = PvSystem.from_config(site, config.pv)
        for line in self.pv.warnings():
            log.warning("%s", line)
        if self.pv.weather is not None:
            log.info("PV in the weather of %s", self.pv.weather.describe())
        self.moments = Moments(site.timezone, self.pv.power_w)
        # shards: the output directory is shared, the journal is the shard's own
        self.claim: ShardClaim | None = None
        if self.topology.sharded:
            self.claim = ShardClaim(exclusive_directory(output.directory, self.topology))
        self.files = DayFiles(
            output.directory,
            fsync=output.fsync,
            max_open=descriptor_budget(output.max_open_files),
            journal=True,
            shared=self.claim is not None,
            journal_directory=self.claim.directory if self.claim is not None else None,
        )
        # one pvsimd per output directory; shards share theirs (a shared lock, which
        # keeps an unsharded pvsimd out) and claim their shard's part only when the
        # broker delivers to them (self.claim): a standby must start
        if self.claim is None:
            self.lock = DirectoryLock(
                exclusive_directory(output.directory, self.topology), "another pvsimd"
            )
        else:
            self.lock = DirectoryLock(
                output.directory,
                "a pvsimd without shards, which writes without the shards' locks",
                shared=True,
            )
        self.flush_interval: float = output.flush_interval
        self.record: AckRecord[Delivery] = AckRecord(
            ack_batch(config.broker.prefetch), STORAGE_RETRY_S
        )
        self.stats = ReadingStats(site.timezone)
        self.future = FutureLimit.from_build(config.security.future_tolerance)
        self.syncer: Syncer[SyncRequest] | None = None  # fsync = batch: started by connect()
        self._draining = False
        self._last_commit = time.monotonic()
        self._depth_checked = float("-inf")
        self._letting_go = False  # shards: the session ended, the claim is to be let go
        self._waiting_logged = 0.0  # shards: when "waiting for the claim" was last logged
        self._late_repeats = 0  # shards: files.late_repeats already counted in stats

    @property
    def consumer(self) -> Consumer | None:
        return self.sessions.session

    @classmethod
    def check(cls, config: PvsimdConfig) -> None:
        section = config.broker
        if section.shard >= section.shards:
            raise ConfigError(
                config.source("broker", "shard"),
                "broker",
                "shard",
                f"must be less than shards = {section.shards} (0 … {section.shards - 1}), "
                f"got {section.shard}",
            )

    @classmethod
    def describe_config(cls, config: PvsimdConfig) -> list[str]:
        pv = PvSystem.from_config(config.site, config.pv)
        if pv.weather is None:
            return []
        distance = pv.weather.distance_km(config.site.latitude, config.site.longitude)
        return [f"weather file {pv.weather.describe()}, {distance:.0f} km from [site]"] + [
            f"warning: {line}" for line in pv.warnings()
        ]

    # --- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        files = self.files
        try:
            files.directory.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()  # before anything is read or written there; else exit 75
            if files.fsync == "batch":
                files.sync_target()
        except OSError as exc:
            raise StartupError(
                f"cannot open the output directory {files.directory}: {exc}"
            ) from None
        if self.claim is not None:
            self._replay_unclaimed()
        elif files.journal is not None:
            self._replay_journal_at_start()
        how = f"fsync = {files.fsync}"
        if files.fsync == "batch" and self.syncer is None:
            self.syncer = Syncer(files.sync, self._wake_for_syncs)
            how = "synced with one syncfs per batch"
        log.info("CSV files under %s: %s, up to %d kept open", files.directory, how, files.max_open)

    def _replay_unclaimed(self) -> None:
        """Shards, at start: when nobody holds the shard, write the rows the last run
        left in its journal to their day files now (as an unsharded pvsimd does), and
        let go again; otherwise the active pvsimd did that when it claimed the shard."""
        try:
            self.claim.acquire()
        except DirectoryInUse:
            return
        except OSError as exc:
            raise StartupError(f"cannot claim {self.claim.directory}: {exc}") from None
        try:
            self._replay_journal_at_start()
        finally:
            if self.files.journal is not None:
                self.files.journal.close()
            self.claim.release()

    def _replay_journal_at_start(self) -> None:
        try:
            self._replay_journal()
        except OSError as exc:
            raise StartupError(
                f"cannot write the rows of the journal {self.files.journal.path} "
                f"to their day files: {exc}"
            ) from None

    def _replay_journal(self) -> None:
        added, repeats = self.files.replay_journal()
        if added or repeats:
            log.info(
                "journal: %d rows of the last run written to their day files "
                "(%d were there already)",
                added,
                repeats,
            )

    def open_session(self, url: str) -> Consumer:
        consumer = Consumer(
            self.broker,
            self.topology,
            self.config.broker.prefetch,
            self.handle if self.claim is None else self.handle_shard,
            tick=self._tick,
            tick_interval=min(self.flush_interval, 0.1),
            on_dead_letter_confirmed=self._on_dead_letter_confirmed,
            stop=self.signals.stop,
        )
        consumer.connect(url)
        return consumer

    def on_session_open(self, session: Consumer) -> None:
        log.info("consuming from queue %s on %s", self.topology.consumed, session.display_url)

    def on_session_lost(self, exc: ConnectionLost) -> None:
        """The broker redelivers what we did not acknowledge: drop our side of it."""
        self.record.connection_lost()
        self._settle_syncs()  # their results no longer acknowledge anything
        self.files.discard_buffered()
        self.files.force_checkpoint()
        if self.claim is not None and self.claim.held:
            # the broker may pick another pvsimd for the shard now: let go of the claim
            self._letting_go = True
            self._let_go()

    # --- shards: claiming and letting go -------------------------------------------------

    def handle_shard(
        self, channel: object, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        """pika's on_message callback with shards: the shard is claimed first."""
        if not self.claim.held and not self._claim():
            self.record.hold((method, props, body))
            return
        self.handle(channel, method, props, body)

    def _claim(self) -> bool:
        """The broker delivers to us: become the shard's active pvsimd (claim it, write
        the previous holder's journal rows to their day files).  False while another
        pvsimd still holds it, or the journal cannot be written (tried again later)."""
        try:
            self.claim.acquire()
        except (DirectoryInUse, OSError) as exc:
            now = time.monotonic()
            if now - self._waiting_logged >= 10:
                self._waiting_logged = now
                if isinstance(exc, DirectoryInUse):
                    who = f"pvsimd {exc.pid}" if exc.pid is not None else "another pvsimd"
                    why = f"{who} still holds {self.claim.directory}"
                else:
                    why = f"{self.claim.directory} cannot be claimed: {exc}"
                log.warning(
                    "shard %d: deliveries began, but %s; they wait",
                    self.topology.shard,
                    why,
                )
            return False
        try:
            self._replay_journal()
        except OSError as exc:
            self._storage_failed(exc)
            return False  # the claim is kept: the replay is retried with the held deliveries
        self._letting_go = False
        log.info(
            "shard %d: active, consuming %s (claimed %s)",
            self.topology.shard,
            self.topology.consumed,
            self.claim.directory,
        )
        return True

    def _let_go(self) -> None:
        """After a session ended (or when stopping): write and sync every row still
        buffered (the journal's), then let go of the claim.  On failure the claim is
        kept, and the next tick tries again."""
        try:
            self.files.let_go_of_journal()
        except OSError as exc:
            self._storage_failed(exc)
            return
        self.claim.release()
        self._letting_go = False
        lasted = self.record.storage_recovered(time.time())
        if lasted is not None:
            log.warning("CSV files writable again after %.0f s; resuming", lasted)
        log.info("shard %d: let go of %s", self.topology.shard, self.claim.directory)

    def _role(self) -> str:
        """What STATUS says first: ``consuming <queue>``; with shards, whether this
        pvsimd is its shard's active one or a standby (no delivery in this session yet:
        the broker delivers to the shard's single active consumer only)."""
        queue = self.topology.consumed
        if self.claim is None:
            return f"consuming {queue}"
        shard = f"shard {self.topology.shard} of {self.topology.shards}"
        if self.claim.held:
            return f"consuming {queue} ({shard}, active)"
        holder = self.claim.holder()
        who = "" if holder is None else f"; pvsimd {holder or '?'} is active"
        if self.record.held:
            return f"taking over {queue} ({shard}{who}, its deliveries wait)"
        return f"standby for {queue} ({shard}{who})"

    def drain(self) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        self._draining = True
        consumer.cancel()
        if not self.sessions.resume("stopping"):
            return
        self.checkpoint()
        self._settle_syncs()
        if self.record.dead_letters and consumer.connection.is_open:
            self.sessions.resume("stopping")  # the confirm callback acknowledges and pauses

    def close(self) -> None:
        if self.syncer is not None:
            self.syncer.stop(SETTLE_TIMEOUT_S)
        self.files.discard_buffered()  # what was not acknowledged comes back from the broker
        try:
            self.files.close()
        except OSError as exc:  # the disk: those rows are in the journal or still queued
            log.error(
                "could not write the last rows to their day files under %s: %s; the journal "
                "keeps the acknowledged ones for the next start, the broker the others",
                self.files.directory,
                exc,
            )
        finally:
            self.lock.release()
            if self.claim is not None:
                self.claim.release()
        stats = self.stats
        log.info(
            "%s: %d rows since start, %d repeats dropped, %d invalid",
            self.topology.consumed,
            stats.rows,
            stats.duplicates,
            stats.rejected,
        )

    # --- deliveries --------------------------------------------------------------------

    def handle(
        self, _channel: object, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        """pika's on_message callback (every delivery runs through here)."""
        self.stats.received += 1
        delivery = (method, props, body)
        if self.record.admit(delivery) and not self._process(method, props, body):
            self.record.hold(delivery)

    def _process(self, method: Basic.Deliver, props: BasicProperties, body: bytes) -> bool:
        """Buffer the delivery's row or dead-letter it; False when storage failed."""
        try:
            meter_id, moment, power_w, seq = wire.decode_with(body, self.moments.at)
            if method.routing_key != wire.ROUTING_PREFIX + meter_id:
                raise wire.InvalidReading(f"routing key does not match meter_id {meter_id!r}")
            senders = self.senders
            if senders is not None and not senders.allowed(props.user_id, meter_id):
                raise Refused("forged", senders.forged(props.user_id, meter_id))  # verify_sender
            if moment.epoch_us > self.future.limit_us:  # rare: checked against the clock now
                if (future := self.future.exceeded(moment.epoch_us)) is not None:
                    raise Refused("future", future)
        except wire.InvalidReading as exc:
            return self._dead_letter(
                method, props, body, str(exc), getattr(exc, "reason", "invalid")
            )
        try:
            added = self.files.buffer(meter_id, moment, power_w, seq)
        except OSError as exc:
            self._storage_failed(exc)
            return False
        if added:
            self.stats.row(moment.day, moment.ts)
        else:
            self.stats.repeat(moment.ts)
            log.debug("dropped a repeat of %s at %s", meter_id, wire.format_ts(moment.ts))
        self._processed(method.delivery_tag)
        return True

    def _dead_letter(
        self,
        method: Basic.Deliver,
        props: BasicProperties,
        body: bytes,
        reason: str,
        kind: str = "invalid",
    ) -> bool:
        """Republish the message to the dead-letter queue (processed: True), or leave it
        unprocessed when the session is ending (False: held until the session is gone,
        then redelivered)."""
        consumer = self.consumer
        publish_tag = None
        if consumer is not None:
            publish_tag = consumer.dead_letter(body, props, method.routing_key, reason)
        if publish_tag is None:
            return False
        self.stats.dead_letter(kind)
        log.warning(
            "%s message with routing key %r sent to %s: %s",
            "invalid" if kind == "invalid" else "refused",
            method.routing_key,
            self.topology.dead_letter_queue,
            reason,
        )
        self.record.dead_lettered(publish_tag, method.delivery_tag)
        self._processed(method.delivery_tag)
        return True

    def _on_dead_letter_confirmed(self, publish_tag: int, multiple: bool, ok: bool) -> None:
        if not ok:
            self.consumer.fail("the broker refused a dead letter; the message is redelivered")
            return
        self._acknowledge(self.record.dead_letter_confirmed(publish_tag, multiple))
        if self._draining and not self.record.dead_letters:
            self.consumer.pause()

    def _processed(self, delivery_tag: int) -> None:
        if self.record.processed(delivery_tag):
            self.commit_batch()

    # --- commits -----------------------------------------------------------------------

    def commit_if_due(self) -> bool:
        """The flush interval's checkpoint, once ``flush_interval`` has passed since the
        last commit (the tick asks)."""
        if time.monotonic() - self._last_commit < self.flush_interval:
            return True
        return self.checkpoint()

    def checkpoint(self) -> bool:
        """Write every buffered row to its day file and have it synced; the deliveries
        processed so far are acknowledged once that is done.  False when writing failed."""
        return self._commit(batch=False)

    def commit_batch(self) -> bool:
        """The commit due by the batch size (a backlog): the rows since the last commit
        go to the journal, unless a checkpoint is due (:mod:`pvsimd.journal`)."""
        return self._commit(batch=True)

    def _commit(self, batch: bool) -> bool:
        now = time.monotonic()
        self._last_commit = now
        if self.consumer is None:
            return True
        files = self.files
        if not self.record.has_new and (batch or not files.journal_holds_rows):
            return True  # nothing new, and no journaled rows owed to their day files
        to_journal = batch and not files.checkpoint_due(now)
        try:
            generation = files.append_to_journal(now) if to_journal else files.write()
        except OSError as exc:
            self._storage_failed(exc)
            return False
        if files.late_repeats != self._late_repeats:  # shards: rows another pvsimd wrote
            self.stats.late_repeats(files.late_repeats - self._late_repeats)
            self._late_repeats = files.late_repeats
        request = (self.record.submit(), generation)
        if self.syncer is not None and (to_journal or files.unsynced):
            self.syncer.request(request)  # in order after the syncs in flight
        else:  # fsync = file or off: the write made them as durable as they get
            self._synced(request, None)
        return True

    def _wake_for_syncs(self) -> None:
        """Called in the sync thread after each sync: collect it in the I/O loop."""
        consumer = self.consumer
        if consumer is not None:
            consumer.wake(self._collect_syncs)

    def _collect_syncs(self) -> None:
        if self.syncer is not None:
            for request, error in self.syncer.results():
                self._synced(request, error)

    def _settle_syncs(self) -> None:
        """Wait for the syncs in flight and take their results (stopping, reconnecting)."""
        if self.syncer is not None:
            if not self.syncer.wait_idle(SETTLE_TIMEOUT_S):
                log.warning("a sync of the CSV files is still running after %g s", SETTLE_TIMEOUT_S)
            self._collect_syncs()

    def _synced(self, request: SyncRequest, error: OSError | None) -> None:
        token, generation = request
        record = self.record
        if error is not None:  # also one of an older epoch: syncfs reports a writeback
            record.sync_failed()  # error once, to whichever sync comes first
            self.files.roll_back_unsynced()
            self._storage_failed(error)
            return
        if not record.counts(token):
            return  # its rows were rolled back after an earlier failure and are written again
        self.files.mark_synced(generation)
        lasted = record.storage_recovered(time.time())
        if lasted is not None:
            log.warning("CSV files writable again after %.0f s; resuming", lasted)
        self._acknowledge(record.synced(token))

    def _acknowledge(self, ack: Ack | None) -> None:
        if ack is not None and self.consumer is not None:
            self.consumer.ack_upto(ack.upto)
            self.sessions.did_work(ack.count)
            self.stats.acknowledged_upto(ack.count, time.monotonic())

    # --- storage failure episodes ------------------------------------------------------

    def _storage_failed(self, exc: OSError) -> None:
        self.stats.write_errors += 1
        self.files.force_checkpoint()  # what failed is written again, to the day files
        error = exc.strerror or str(exc)
        if self.record.storage_failed(error, time.monotonic(), time.time()):
            log.error(
                "cannot write CSV files under %s: %s; readings stay in the broker, "
                "retrying every %g s",
                self.files.directory,
                exc,
                STORAGE_RETRY_S,
            )

    def _retry_held(self) -> None:
        """During a storage failure: retry the writes every second, then the held
        deliveries in order."""
        record = self.record
        if record.storage is not None:
            if not record.retry_due(time.monotonic()) or not self.checkpoint():
                return
        if self.claim is not None and not self.claim.held and not self._claim():
            return
        while (delivery := record.next_held()) is not None:
            if not self._process(*delivery):
                return
            record.release()

    # --- periodic work -----------------------------------------------------------------

    def _tick(self) -> None:
        self.heartbeat()
        self.stats.new_day(datetime.now(self.stats.tz))
        self.stats.owing(self.record.waiting > 0, time.monotonic())
        self.future.update()
        consumer = self.consumer
        if consumer is None:
            return
        self._collect_syncs()
        if self._letting_go:
            if self.record.last_tag or self.record.held:
                self._letting_go = False  # delivering to us again: we stay active
            elif self.record.retry_due(time.monotonic()):
                self._let_go()
        if self.record.storage is not None or self.record.held:
            self._retry_held()
        else:
            self.commit_if_due()
        now = time.monotonic()
        if now - self._depth_checked >= DEPTH_INTERVAL_S:
            self._depth_checked = now
            consumer.check_depth()
        if self.signals.stop.is_set() and not self._draining:
            consumer.pause()

    def status(self) -> str:
        stats = self.stats
        link = self.sessions.describe(self._role())
        last = stats.last_reading
        age = "none yet" if last is None else f"{time.time() - last.timestamp():.0f} s old"
        depth = self.consumer.depth if self.consumer is not None else None
        backlog = "?" if depth is None else str(depth)
        text = (
            f"{link}; {stats.rows_today} rows today, {stats.rows} since start, "
            f"{stats.duplicates} repeats dropped, {stats.rejected} dead-lettered; "
            f"backlog {backlog} in the queue; last reading {age}"
        )
        if self.pv.weather is not None:
            text += f"; weather file {self.pv.weather.source}"
        if self.future.clock_untrusted:
            text += "; clock before the build date: no check for readings in the future"
        storage = self.record.storage
        if storage is not None:
            text = (
                f"CSV WRITES FAILING since {format_time(storage.since)} ({storage.error}), "
                f"{self.record.waiting} readings waiting; " + text
            )
        return text

    def metric_values(self) -> dict[str, Value]:
        return pvsimd_metrics.values(self)
