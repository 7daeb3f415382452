"""A stop that comes while a broker connection is being set up ends it at once: a
broker that accepts TCP but never speaks AMQP (a hung node, a half-open load balancer)
must not keep a daemon from stopping until pika's connect timeout — 20 s by default,
which is the units' TimeoutStopSec=, after which systemd kills it."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.support.wait import wait_until


@pytest.fixture
def silent_broker():
    """A TCP listener that accepts connections and never says a word."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not done.is_set():
            try:
                accepted.append(srv.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"amqp://guest:guest@127.0.0.1:{srv.getsockname()[1]}/%2F", accepted
    done.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    srv.close()


@pytest.mark.parametrize("program", ["meterd", "pvsimd"])
def test_sigterm_while_connecting_stops_within_seconds(site, silent_broker, program):
    url, accepted = silent_broker
    site.daemon_url = url
    proc = site.start_meterd("house-a", interval=1) if program == "meterd" else site.start_pvsimd()
    wait_until(lambda: accepted, timeout=20, message="the daemon's connection attempt")
    started = time.monotonic()
    assert proc.stop(timeout=15) == 0, proc.log()
    took = time.monotonic() - started
    assert took < 5, f"{program} took {took:.1f} s to stop while connecting"
    assert "Traceback" not in proc.log()
