"""The acknowledgement record: which deliveries pvsimd may acknowledge, and when.

No I/O: events go in, actions come out, and :class:`~pvsimd.service.PvSimDaemon` does
what they say (write, sync, ``basic.ack``).  The rules:

1. Deliveries of one broker session carry consecutive tags.  Each is either
   *processed* (its row buffered, or the message dead-lettered) or *held*: once one is
   held (buffering failed: the disk), every later one is held behind it, in order, until
   a retry processes them (:meth:`AckRecord.next_held`).  Held messages are never
   requeued, so a long episode does not use up their delivery limit.
2. A *commit* writes (or journals) the rows of everything processed so far and asks for
   a sync; it is due after ``batch`` deliveries (:meth:`AckRecord.processed`) or on the
   flush interval.  The sync's token names the session, the sync epoch and the newest
   tag it covers.
3. A delivery is acknowledged (``multiple=True``) once a sync covering it succeeded and
   every dead letter at or before it is confirmed by the broker; acknowledgements only
   move forward.
4. A failed sync — any, also one begun before an earlier failure — starts a new epoch:
   results of syncs begun before it no longer count (their rows are rolled back and
   written again), and what was submitted but not durable is submitted again by the
   next commit.
5. A lost connection starts a new session: the broker redelivers whatever was not
   acknowledged, so everything of the old session is forgotten, and results of its
   syncs acknowledge nothing.
6. While writing fails (a *storage episode*), nothing new is acknowledged and the write
   is retried every ``retry_s``; the episode ends with the first successful sync.
   Deliveries are held only once buffering itself fails (a day file that cannot be
   opened); otherwise they are buffered and stay unacknowledged, so the prefetch limit
   stops the flow either way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

D = TypeVar("D")  # a held delivery, opaque here


class SyncToken(NamedTuple):
    """What a sync request carries back: whose rows it made durable."""

    session: int
    epoch: int
    tag: int  # the newest delivery tag it covers


class Ack(NamedTuple):
    """Acknowledge every delivery up to ``upto``: ``count`` of them are new."""

    upto: int
    count: int


@dataclass
class StorageEpisode:
    """Writing fails since ``since`` (wall clock), last error ``error``."""

    error: str
    since: float
    retry_at: float  # monotonic


class AckRecord(Generic[D]):
    """The acknowledgement state of pvsimd's current broker session (module docstring)."""

    def __init__(self, batch: int, retry_s: float = 1.0):
        self.batch = batch
        self.retry_s = retry_s
        self.session = 0
        self.epoch = 0  # bumped by a failed sync: older results no longer count
        self.last_tag = 0  # the newest processed delivery
        self.submitted_tag = 0  # the newest whose rows were written and sent to sync
        self.durable_tag = 0  # the newest whose rows are synced
        self.acked_tag = 0  # the newest acknowledged
        self.held: deque[D] = deque()
        self.dead_letters: dict[int, int] = {}  # publish tag -> delivery tag, unconfirmed
        self.storage: StorageEpisode | None = None

    # --- deliveries -----------------------------------------------------------------

    def admit(self, delivery: D) -> bool:
        """A new delivery: True to process it now, False when it was held (rule 1)."""
        if self.held:
            self.held.append(delivery)
            return False
        return True

    def hold(self, delivery: D) -> None:
        """Processing ``delivery`` failed (it and all later ones wait, rule 1)."""
        self.held.append(delivery)

    def next_held(self) -> D | None:
        """The oldest held delivery, to be processed again (:meth:`release` it after)."""
        return self.held[0] if self.held else None

    def release(self) -> None:
        """The oldest held delivery was processed."""
        self.held.popleft()

    def processed(self, tag: int) -> bool:
        """A delivery was processed; True when a commit is due by the batch size."""
        self.last_tag = tag
        return tag - self.submitted_tag >= self.batch

    def dead_lettered(self, publish_tag: int, tag: int) -> None:
        """Delivery ``tag`` was republished as dead letter ``publish_tag`` (unconfirmed)."""
        self.dead_letters[publish_tag] = tag

    # --- commits and syncs ------------------------------------------------------------

    @property
    def has_new(self) -> bool:
        """Deliveries processed since the last commit."""
        return self.last_tag != self.submitted_tag

    def submit(self) -> SyncToken:
        """The rows of every processed delivery were written (or journaled): the token of
        the sync that makes them durable (rule 2)."""
        self.submitted_tag = self.last_tag
        return SyncToken(self.session, self.epoch, self.last_tag)

    def synced(self, token: SyncToken) -> Ack | None:
        """A sync succeeded; the acknowledgement it allows, if any (rules 3-5)."""
        if token.epoch != self.epoch:
            return None
        if token.session == self.session and token.tag > self.durable_tag:
            self.durable_tag = token.tag
            return self._ack()
        return None

    def counts(self, token: SyncToken) -> bool:
        """Whether a result for ``token`` still counts (rule 4: not of an older epoch)."""
        return token.epoch == self.epoch

    def sync_failed(self) -> None:
        """A sync failed — whichever it was: ``syncfs`` reports a writeback error once,
        to the first sync after it, so an older epoch's failure may be about newer rows.
        A new epoch, and what was submitted but not durable is submitted again (rule 4):
        the rollback takes every unsynced write, of whatever session."""
        self.epoch += 1
        self.submitted_tag = self.durable_tag

    def dead_letter_confirmed(self, publish_tag: int, multiple: bool) -> Ack | None:
        """The broker confirmed dead letters up to ``publish_tag``."""
        unconfirmed = self.dead_letters
        if multiple:
            for t in [t for t in unconfirmed if t <= publish_tag]:
                del unconfirmed[t]
        else:
            unconfirmed.pop(publish_tag, None)
        return self._ack()

    def _ack(self) -> Ack | None:
        limit = self.durable_tag
        if self.dead_letters:
            limit = min(limit, min(self.dead_letters.values()) - 1)
        if limit <= self.acked_tag:
            return None
        ack = Ack(limit, limit - self.acked_tag)
        self.acked_tag = limit
        return ack

    def connection_lost(self) -> None:
        """The broker redelivers what was not acknowledged: a new session (rule 5)."""
        self.session += 1
        self.last_tag = self.submitted_tag = self.durable_tag = self.acked_tag = 0
        self.held.clear()
        self.dead_letters.clear()

    @property
    def waiting(self) -> int:
        """Deliveries processed or held but not yet acknowledged."""
        return self.last_tag - self.acked_tag + len(self.held)

    # --- storage episodes (rule 6) ------------------------------------------------------

    def storage_failed(self, error: str, now: float, wall: float) -> bool:
        """Writing or syncing failed; True when this starts an episode."""
        started = self.storage is None
        if started:
            self.storage = StorageEpisode(error, wall, now + self.retry_s)
        else:
            self.storage.error = error
            self.storage.retry_at = now + self.retry_s
        return started

    def storage_recovered(self, wall: float) -> float | None:
        """A sync succeeded; the episode's length in seconds when this ends one."""
        if self.storage is None:
            return None
        lasted = wall - self.storage.since
        self.storage = None
        return lasted

    def retry_due(self, now: float) -> bool:
        """During an episode: whether to retry the write now (then not again for
        ``retry_s``).  Outside one: True."""
        if self.storage is None:
            return True
        if now < self.storage.retry_at:
            return False
        self.storage.retry_at = now + self.retry_s
        return True
