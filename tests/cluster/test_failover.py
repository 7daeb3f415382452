"""Every reading meterd samples ends up in exactly one CSV row on a three-node cluster:
when the node leading the shard queues dies, when a shard's active pvsimd dies (its
standby takes over), when the node a meterd uses stops, through a rolling restart of
every node, and when a shard is added while readings flow (a meter moves between
shards).  Each test ends with ``rig.finish()``: meters stopped, every assigned reading
written, pvsimd stopped, ``assert_exactly_once``."""

from __future__ import annotations

import pytest

from tests.cluster.harness import PLACEMENT

pytestmark = pytest.mark.cluster


def test_the_node_leading_the_shard_queues_is_sigkilled_and_restarted(rig):
    rig.start()
    for shard in (1, 0):
        members = rig.cluster.members(rig.shard_queue(shard))
        assert len(members) == 3  # three replicas: RabbitMQ 3.10's default, none configured
        node = rig.kill_leader(shard)
        assert rig.cluster.leader(rig.shard_queue(shard)) is not node  # a new leader
        rig.restart_node(node)
        assert rig.cluster.members(rig.shard_queue(shard)) == members
    rig.finish()


def test_the_active_pvsimd_of_a_shard_is_sigkilled_and_its_standby_takes_over(rig):
    rig.start()
    for shard in (0, 1):
        rig.wait_progress(30)
        if shard == 1:
            # from here on pvsimd start with prefetch 8 (a commit every 2 deliveries: a
            # backlog goes through the journal); the killed one comes back so
            rig.pvsimd_keys = {"prefetch": 8}
        before = rig.active(shard)
        after = rig.kill_active_pvsimd(shard)  # and started again: the new standby
        assert rig.active(shard) == after != before
        assert rig.pvsimds[before].log().split("ready: ")[-1].startswith("standby for")
    rig.wait_progress(30)
    rig.kill_active_pvsimd(1, measure=False)  # now both of shard 1 have prefetch 8
    rig.wait_progress(30)
    # killed with acknowledged rows only in its journal: the standby writes them first
    rig.kill_active_pvsimd_with_journal_rows(1)
    rig.wait_progress(30)
    rig.finish()


def test_the_node_a_meterd_uses_is_stopped(rig):
    rig.start()
    for meter in ("house-a", "house-j"):
        node = rig.stop_node_of(meter)
        rig.restart_node(node)
    rig.wait_progress(30)
    rig.finish()


def test_a_rolling_restart_of_all_three_nodes(rig):
    rig.start()
    for node in rig.cluster.nodes:
        rig.restart_node(node, kind="rolling restart")
    rig.finish()


def test_a_third_shard_added_while_readings_flow(rig):
    rig.start()
    rig.add_shard()
    rig.wait_progress(40)
    rig.finish()
    moved = [m for m, shard in PLACEMENT[3].items() if shard == 2]
    # the moved meter's rows came from the new shard (and it has one file per day)
    assert moved and rig.rows_written_by("shard2-a") > 0, rig.tails()
    for meter in moved:
        days = [p.name for p in rig.site.files(meter)]
        assert len(days) == len(set(days))
