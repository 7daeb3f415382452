"""[broker] url with several nodes, against the one broker of this machine: a node that
is not there is passed over, and both daemons name the node they use."""

from __future__ import annotations

import socket

import pytest

from tests.support.daemons import Site
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_a_node_that_is_down_is_passed_over(tmp_path):
    live = "amqp://guest:guest@127.0.0.1:5672/%2F"
    dead = f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F"
    site = Site(root=tmp_path, daemon_url=f"{dead} {live}")
    try:
        pvsimd = site.start_pvsimd()
        meter = site.start_meterd("house-a", 0.05)
        wait_until(lambda: len(site.rows("house-a")) >= 10, timeout=30, message="rows")
        for proc in (pvsimd, meter):
            assert "127.0.0.1:5672/%2F" in proc.log(), proc.log()
            assert "guest:***@" in proc.log() and "guest:guest@" not in proc.log()
        assert meter.stop() == 0 and pvsimd.stop() == 0
        assert " ERROR " not in pvsimd.log() + meter.log()
        assert sorted(site.seqs("house-a")) == list(range(site.assigned("house-a")))
    finally:
        site.cleanup()
