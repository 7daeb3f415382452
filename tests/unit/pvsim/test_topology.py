"""The broker topology: unchanged for one queue (an upgrade needs no migration), the
replicas only when asked for, and the shards behind a consistent-hash exchange."""

from __future__ import annotations

import pytest

from pvsim.topology import Topology

#: what pvsimd declared before clusters and shards: an upgrade must declare exactly this
BEFORE = {
    "pvsimd.readings": {
        "x-queue-type": "quorum",
        "x-delivery-limit": 20,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "pvsimd.readings.invalid",
    },
    "pvsimd.readings.invalid": {"x-queue-type": "quorum"},
}


def test_one_queue_keeps_the_layout_and_the_arguments_of_before():
    t = Topology()
    assert not t.sharded and t.hash_exchange is None and t.exchange_binding is None
    assert {q.name: q.arguments for q in t.queues} == BEFORE
    assert t.consumed == "pvsimd.readings"
    b = t.binding
    assert (b.exchange, b.queue, b.routing_key, b.to_exchange) == (
        "meter.readings", "pvsimd.readings", "reading.*", False,
    )  # fmt: skip


def test_replicas_are_declared_only_when_set():
    t = Topology(replicas=3)
    for queue in t.queues:
        assert queue.arguments["x-quorum-initial-group-size"] == 3
        rest = {k: v for k, v in queue.arguments.items() if k != "x-quorum-initial-group-size"}
        assert rest == BEFORE[queue.name]


def test_shards_sit_behind_a_consistent_hash_exchange_with_a_single_active_consumer():
    t = Topology(shards=3, shard=2)
    assert t.sharded and t.consumed == "pvsimd.readings.2"
    x = t.hash_exchange
    assert (x.name, x.type, x.durable) == ("pvsimd.readings.shards", "x-consistent-hash", True)
    e2e = t.exchange_binding
    assert (e2e.exchange, e2e.queue, e2e.routing_key, e2e.to_exchange) == (
        "meter.readings", "pvsimd.readings.shards", "reading.*", True,
    )  # fmt: skip
    assert t.readings.name == "pvsimd.readings.2"
    assert t.readings.arguments == {
        **BEFORE["pvsimd.readings"],
        "x-single-active-consumer": True,
    }
    assert t.dead_letters.arguments == BEFORE["pvsimd.readings.invalid"]  # one, shared
    b = t.binding
    assert (b.exchange, b.queue, b.routing_key) == (
        "pvsimd.readings.shards", "pvsimd.readings.2", "1",
    )  # fmt: skip
    assert [t.queue_binding(k).queue for k in range(3)] == [
        "pvsimd.readings.0", "pvsimd.readings.1", "pvsimd.readings.2",
    ]  # fmt: skip


@pytest.mark.parametrize(("shards", "shard"), [(1, 1), (2, 2), (2, -1)])
def test_a_shard_outside_the_shards_is_refused(shards, shard):
    with pytest.raises(ValueError):
        Topology(shards=shards, shard=shard)
