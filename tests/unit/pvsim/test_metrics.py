"""The metrics' declarations: [metrics] listen, names by Prometheus's conventions; and that
none of it loads prometheus_client (a daemon with metrics off never does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pvsim.metrics import Listen, Metric, listen_address

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("", None),
        (":10490", Listen("", 10490)),
        ("127.0.0.1:9", Listen("127.0.0.1", 9)),
        ("localhost:10491", Listen("localhost", 10491)),
        ("[::1]:10491", Listen("::1", 10491)),
        ("[::]:10491", Listen("::", 10491)),
    ],
)
def test_listen_addresses(text, want):
    assert listen_address(text) == want
    if want is not None:
        assert str(want) == text  # as the log names it


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10490", "must be HOST:PORT"),
        ("localhost", "must be HOST:PORT"),
        ("localhost:http", "must be HOST:PORT"),
        (":0", "between 1 and 65535"),
        (":70000", "between 1 and 65535"),
        ("::1:10490", "IPv6 address goes in brackets"),
        ("a b:1", "not a host name"),
    ],
)
def test_bad_listen_addresses(text, problem):
    with pytest.raises(ValueError, match=problem):
        listen_address(text)


def test_counters_and_only_counters_end_in_total():
    with pytest.raises(ValueError, match="_total"):
        Metric("x_things", "counter", "things")
    with pytest.raises(ValueError, match="_total"):
        Metric("x_things_total", "gauge", "things")
    with pytest.raises(ValueError, match="counter or gauge"):
        Metric("x_seconds", "histogram", "time")


def test_the_daemons_load_prometheus_client_only_to_serve_metrics():
    """Both daemons, imported as they start: prometheus_client and its HTTP server stay
    out of memory until the endpoint is started (``[metrics] listen`` set)."""
    code = (
        "import sys, meterd.cli, pvsimd.cli\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('prometheus_client', 'wsgiref', 'pvsim'))\n"
        "print(' '.join(loaded))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "pvsim.metrics" in out and "pvsim.lifecycle" in out
    assert not [m for m in out if not m.startswith("pvsim")], out
    assert "pvsim.metrics_endpoint" not in out
