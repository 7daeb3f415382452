"""The order in which a daemon tries the nodes of a cluster: shuffled once, then kept;
a lost node is tried last."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from pvsim.nodes import Nodes

URLS = ("amqp://a", "amqp://b", "amqp://c")


def test_one_node_is_always_tried_alone():
    nodes = Nodes(["amqp://only"])
    assert nodes.to_try() == ("amqp://only",)
    nodes.connected("amqp://only")
    nodes.lost()
    assert nodes.to_try() == ("amqp://only",)


def test_no_node_is_an_error():
    with pytest.raises(ValueError):
        Nodes([])


def test_the_order_is_shuffled_once_per_start_and_spreads_the_daemons():
    firsts = Counter(Nodes(URLS, random.Random(seed)).to_try()[0] for seed in range(600))
    assert set(firsts) == set(URLS)
    assert min(firsts.values()) > 150  # about 200 each: a neighbourhood spreads
    nodes = Nodes(URLS, random.Random(1))
    assert sorted(nodes.urls) == sorted(URLS)
    assert nodes.to_try() == nodes.urls == nodes.to_try()  # kept, not reshuffled


def test_a_lost_node_is_tried_last_and_a_failed_round_starts_where_it_did():
    nodes = Nodes(URLS, random.Random(7))
    a, b, c = nodes.urls
    nodes.connected(a)
    assert nodes.current == a
    nodes.lost()
    assert nodes.current is None
    assert nodes.to_try() == (b, c, a)
    assert nodes.to_try() == (b, c, a)  # every node failed: the next round is the same
    nodes.connected(c)  # b was down, c took the session
    nodes.lost()
    assert nodes.to_try() == (a, b, c)


def test_a_lost_session_without_a_node_in_use_changes_nothing():
    nodes = Nodes(URLS, random.Random(3))
    before = nodes.to_try()
    nodes.lost()
    assert nodes.to_try() == before
