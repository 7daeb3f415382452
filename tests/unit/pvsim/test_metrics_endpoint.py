"""The Prometheus endpoint: the collector reads the values at each scrape, the server
serves them, and an address that cannot be used is a warning."""

from __future__ import annotations

import logging
import socket
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pvsim import build_info, metrics
from pvsim.metrics import Listen, Metric
from pvsim.metrics_endpoint import Collector, serve

DECLARED = (
    Metric("x_things_total", "counter", "things done"),
    Metric("x_queue", "gauge", "things `waiting`"),
    Metric("x_errors_total", "counter", "errors by kind", ("kind",)),
)


def scrape(collector: Collector) -> dict[str, tuple[str, str, list]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        f.name: (f.type, f.documentation, [(s.name, s.labels, s.value) for s in f.samples])
        for f in text_string_to_metric_families(text)
    }


def test_the_collector_reads_the_values_at_each_scrape():
    state = {"done": 3}

    def read():
        return {
            "x_things_total": state["done"],
            "x_queue": 1.5,
            "x_errors_total": {("disk",): 2, ("net",): 0},
        }

    collector = Collector(DECLARED, read)
    got = scrape(collector)
    assert got["x_things"] == ("counter", "things done", [("x_things_total", {}, 3.0)])
    assert got["x_queue"] == ("gauge", "things waiting", [("x_queue", {}, 1.5)])
    assert got["x_errors"][2] == [
        ("x_errors_total", {"kind": "disk"}, 2.0),
        ("x_errors_total", {"kind": "net"}, 0.0),
    ]
    state["done"] = 4
    assert scrape(collector)["x_things"][2] == [("x_things_total", {}, 4.0)]


def test_common_metrics_name_the_build():
    values = metrics.common_values("x", connected=True, reconnects=2)
    got = scrape(Collector(metrics.common("x"), lambda: values))
    assert got["x_broker_connected"][2] == [("x_broker_connected", {}, 1.0)]
    assert got["x_broker_reconnects"][2] == [("x_broker_reconnects_total", {}, 2.0)]
    labels = got["x_build_info"][2][0][1]
    assert labels == {"version": build_info.VERSION, "build_date": build_info.build_date_text()}


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def collector() -> Collector:
    return Collector(DECLARED[:1], lambda: {"x_things_total": 7})


@pytest.mark.parametrize("host", ["127.0.0.1", ""])
def test_the_endpoint_serves_the_metrics_until_closed(host):
    server = serve(Listen(host, 0), collector(), "x")
    assert server is not None
    try:
        assert "x_things_total 7.0" in fetch(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.close()
    with pytest.raises(OSError):
        fetch(f"http://127.0.0.1:{server.port}/metrics")


def test_off_without_an_address():
    assert serve(None, collector(), "x") is None


def test_a_port_in_use_is_a_warning_not_a_failure(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="pvsim.metrics"):
            assert serve(Listen("127.0.0.1", port), collector(), "x", "; hint") is None
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"metrics: cannot listen on 127.0.0.1:{port} (address already in use); hint; "
        "x runs without metrics"
    )


def test_an_address_not_of_this_machine_is_a_warning_too(caplog):
    with caplog.at_level(logging.WARNING, logger="pvsim.metrics"):
        assert serve(Listen("192.0.2.1", 10490), collector(), "x") is None
    assert "cannot listen on 192.0.2.1:10490 (cannot assign requested address)" in caplog.text
