"""The acknowledgement record as a state machine: its ordering rules hold for every
interleaving hypothesis finds of deliveries, dead letters, commits, syncs that succeed
or fail, confirms in any order, held deliveries and lost connections."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pvsimd.acks import Ack, AckRecord, SyncToken

BATCH = 3


class AckRecordMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.record: AckRecord[int] = AckRecord(BATCH, retry_s=1.0)
        self.next_tag = 1  # of the current session
        self.next_publish = 1
        self.kind: dict[int, str] = {}  # tag -> "row" | "dead"
        self.unconfirmed: dict[int, int] = {}  # publish tag -> delivery tag
        self.syncs: list[SyncToken] = []  # requested, oldest first (the sync thread's order)
        self.durable = 0  # the newest tag a counting sync of this session made durable
        self.acked = 0  # what the broker was told, this session
        self.commit_due = False

    # --- helpers -----------------------------------------------------------------------

    def take(self, ack: Ack | None) -> None:
        if ack is None:
            return
        assert ack.upto > self.acked, "acknowledgements only move forward"
        assert ack.count == ack.upto - self.acked
        assert ack.upto <= self.durable, "acknowledged before its rows were durable"
        for tag in range(self.acked + 1, ack.upto + 1):
            assert tag in self.kind, "acknowledged a delivery never processed"
        assert all(ack.upto < tag for tag in self.unconfirmed.values()), (
            "acknowledged past an unconfirmed dead letter"
        )
        self.acked = ack.upto

    def process(self, tag: int, kind: str) -> None:
        self.kind[tag] = kind
        if kind == "dead":
            self.record.dead_lettered(self.next_publish, tag)
            self.unconfirmed[self.next_publish] = tag
            self.next_publish += 1
        self.commit_due = self.record.processed(tag)

    # --- events ------------------------------------------------------------------------

    @rule(kind=st.sampled_from(["row", "row", "dead"]), fails=st.booleans())
    def deliver(self, kind: str, fails: bool) -> None:
        tag = self.next_tag
        self.next_tag += 1
        if not self.record.admit(tag):
            assert self.record.held[-1] == tag  # behind the held ones, in order
            return
        if fails and kind == "row":  # buffering the row failed: held
            self.record.hold(tag)
            self.record.storage_failed("disk full", now=0.0, wall=0.0)
            return
        self.process(tag, kind)

    @rule()
    def retry_held(self) -> None:
        held = self.record.next_held()
        if held is None:
            return
        assert held == min(self.record.held)
        self.record.release()
        self.process(held, "row")

    @rule()
    def commit(self) -> None:
        if self.record.has_new:
            token = self.record.submit()
            assert token.tag == max(self.kind)
            self.syncs.append(token)
            self.commit_due = False

    @precondition(lambda self: self.syncs)
    @rule(ok=st.booleans())
    def sync_finishes(self, ok: bool) -> None:
        token = self.syncs.pop(0)
        record = self.record
        if not ok:  # whichever sync it was (rule 4)
            record.sync_failed()
            assert record.submitted_tag == record.durable_tag  # submitted again
            return
        if not record.counts(token):
            return  # rolled back after an earlier failure: written and synced again
        if token.session == record.session:
            self.durable = max(self.durable, token.tag)
        record.storage_recovered(wall=1.0)
        self.take(record.synced(token))

    @precondition(lambda self: self.unconfirmed)
    @rule(data=st.data(), multiple=st.booleans())
    def dead_letter_confirmed(self, data: st.DataObject, multiple: bool) -> None:
        publish = data.draw(st.sampled_from(sorted(self.unconfirmed)))
        if multiple:
            for p in [p for p in self.unconfirmed if p <= publish]:
                del self.unconfirmed[p]
        else:
            del self.unconfirmed[publish]
        self.take(self.record.dead_letter_confirmed(publish, multiple))

    @rule()
    def connection_lost(self) -> None:
        self.record.connection_lost()
        self.next_tag = 1
        self.kind.clear()
        self.unconfirmed.clear()
        self.durable = self.acked = 0  # the syncs in flight still finish (see the rule)
        self.commit_due = False

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def acknowledged_no_further_than_durable(self) -> None:
        record = self.record
        assert record.acked_tag == self.acked
        assert record.acked_tag <= record.durable_tag <= record.submitted_tag <= record.last_tag

    @invariant()
    def the_batch_size_makes_a_commit_due(self) -> None:
        if self.commit_due:
            assert self.record.last_tag - self.record.submitted_tag >= BATCH

    def teardown(self) -> None:
        """Liveness: once the held are processed, a commit is synced and every dead letter
        confirmed, everything processed is acknowledged."""
        while self.record.next_held() is not None:
            self.retry_held()
        self.commit()
        while self.syncs:
            self.sync_finishes(ok=True)
        for publish in sorted(self.unconfirmed):
            del self.unconfirmed[publish]
            self.take(self.record.dead_letter_confirmed(publish, multiple=False))
        if self.record.has_new or self.record.durable_tag < self.record.last_tag:
            self.commit()
            while self.syncs:
                self.sync_finishes(ok=True)
        assert self.record.acked_tag == self.record.last_tag == max(self.kind, default=0)
        assert not self.record.held


TestAckRecord = AckRecordMachine.TestCase
TestAckRecord.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_a_stale_sync_of_an_old_session_acknowledges_nothing():
    record: AckRecord[int] = AckRecord(batch=10)
    record.processed(1)
    token = record.submit()
    record.connection_lost()
    record.processed(1)  # tag 1 again: another message of the new session
    assert record.counts(token)  # same epoch: its files are marked synced ...
    assert record.synced(token) is None  # ... but it acknowledges nothing now


def test_a_failed_sync_makes_older_results_stale_and_resubmits():
    record: AckRecord[int] = AckRecord(batch=10)
    for tag in (1, 2):
        record.processed(tag)
    record.submit()
    record.processed(3)
    second = record.submit()
    record.sync_failed()
    assert not record.counts(second)  # began before the failure: rows rolled back
    assert record.has_new  # 1..3 are submitted again by the next commit
    assert record.synced(record.submit()) == Ack(3, 3)


def test_an_unconfirmed_dead_letter_holds_back_the_acknowledgement():
    record: AckRecord[int] = AckRecord(batch=10)
    record.processed(1)
    record.dead_lettered(publish_tag=1, tag=2)
    record.processed(2)
    record.processed(3)
    assert record.synced(record.submit()) == Ack(1, 1)
    assert record.dead_letter_confirmed(1, multiple=False) == Ack(3, 2)


def test_a_storage_episode_holds_deliveries_and_retries_every_interval():
    record: AckRecord[str] = AckRecord(batch=10, retry_s=1.0)
    assert record.storage_failed("disk full", now=10.0, wall=100.0)
    assert not record.storage_failed("disk full", now=10.5, wall=100.5)  # the same episode
    record.hold("a")
    assert not record.admit("b")  # behind the held one
    assert list(record.held) == ["a", "b"]
    assert not record.retry_due(11.0) and record.retry_due(11.5) and not record.retry_due(12.0)
    assert record.storage_recovered(wall=130.0) == 30.0
    assert record.storage_recovered(wall=131.0) is None
    assert record.retry_due(0.0)  # no episode: always
