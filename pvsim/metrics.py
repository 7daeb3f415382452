"""Prometheus metrics, for both daemons: the ``[metrics]`` section, how a daemon declares
its metrics, the collector that reads them when Prometheus scrapes, and the endpoint.

The daemons count with plain integers where things happen — pvsimd's hot path takes
tens of thousands of readings a second, and prometheus_client's ``Counter.inc()`` takes
a lock each time — and nothing is done for metrics until a scrape: then
:class:`Collector` asks the daemon for the current values and hands them to
prometheus_client as metric families, which writes the exposition format (text or
OpenMetrics, as the scraper asks).

Each daemon declares its metrics as :class:`Metric` tuples (name, type, labels,
meaning); the README's tables are those declarations (a test compares them), and the
collector exposes exactly them.  The names follow Prometheus's conventions: the
daemon's name as prefix, base units (seconds, bytes, watts), ``_total`` for counters,
no per-meter labels (ten thousand meters must not make ten thousand series).

The endpoint (:func:`serve`) is a small single-threaded HTTP server in a thread of its
own; a scrape is answered in milliseconds, and one slow client waits its turn (10 s at
most) instead of costing a thread each.  An address that cannot be used — the port
taken by another daemon, an unknown host — is one WARNING, and the daemon runs on
without metrics.
"""

from __future__ import annotations

import errno
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.core import Metric as Family

from pvsim import build_info
from pvsim import config as c

log = logging.getLogger("pvsim.metrics")

# a value: a number, or for a metric with labels one number per tuple of label values
Value = float | Mapping[tuple[str, ...], float]


# --- [metrics] listen -------------------------------------------------------------------


@dataclass(frozen=True)
class Listen:
    """Where the endpoint listens: ``host`` empty means every interface."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def listen_address(text: str) -> Listen | None:
    """``HOST:PORT``, ``[V6ADDR]:PORT`` or ``:PORT`` (every interface); empty: off."""
    if not text:
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(
            f"must be HOST:PORT, [IPV6]:PORT or :PORT (empty: no metrics), got {text!r}"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets, as [::1]:PORT, got {text!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"the port must be between 1 and 65535, got {port}")
    if any(ch.isspace() or ch in "/[]" for ch in host):
        raise ValueError(f"is not a host name or address: {host!r}")
    return Listen(host, port)


LISTEN_DOC = (
    "`HOST:PORT` of the Prometheus endpoint `/metrics` (`:PORT`: every interface; empty: "
    "none); a port that cannot be used is a WARNING, not a failure"
)


def listen_key(default: str, doc: str = LISTEN_DOC) -> Any:
    """The ``[metrics] listen`` key, with a daemon's own default port."""
    return c.key(listen_address, default, doc)


# --- declarations and values ------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One metric a daemon exposes: name, ``counter`` or ``gauge``, meaning (the README's
    column) and label names."""

    name: str
    type: str
    doc: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in ("counter", "gauge"):
            raise ValueError(f"{self.name}: type must be counter or gauge")
        if (self.type == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters, and only counters, end in _total")

    def family(self, value: Value) -> Family:
        """The metric family prometheus_client writes out, with ``value``."""
        doc = self.doc.replace("`", "")
        if self.type == "counter":
            family: Family = CounterMetricFamily(self.name, doc, labels=self.labels or None)
        else:
            family = GaugeMetricFamily(self.name, doc, labels=self.labels or None)
        if self.labels:
            for label_values, number in value.items():
                family.add_metric(list(label_values), float(number))
        else:
            family.add_metric([], float(value))
        return family


def common(prefix: str) -> tuple[Metric, ...]:
    """The metrics of both daemons: the broker link and the build."""
    return (
        Metric(f"{prefix}_broker_connected", "gauge", "1 while connected to the broker, else 0"),
        Metric(
            f"{prefix}_broker_reconnects_total",
            "counter",
            "connections to the broker opened again after one was lost",
        ),
        Metric(
            f"{prefix}_build_info",
            "gauge",
            "always 1; the labels name the version and its build date",
            ("version", "build_date"),
        ),
    )


def common_values(prefix: str, connected: bool, reconnects: int) -> dict[str, Value]:
    return {
        f"{prefix}_broker_connected": 1 if connected else 0,
        f"{prefix}_broker_reconnects_total": reconnects,
        f"{prefix}_build_info": {(build_info.VERSION, build_info.build_date_text()): 1},
    }


def names(metrics: Iterable[Metric]) -> list[str]:
    return [m.name for m in metrics]


class Collector:
    """Reads a daemon's values when Prometheus scrapes (a prometheus_client collector)."""

    def __init__(self, metrics: Sequence[Metric], read: Callable[[], Mapping[str, Value]]):
        self.metrics = tuple(metrics)
        self.read = read

    def collect(self) -> Iterable[Family]:
        values = self.read()
        return [m.family(values[m.name]) for m in self.metrics]


# --- the endpoint -------------------------------------------------------------------------

REQUEST_TIMEOUT_S = 10.0


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_S  # a client that sends nothing is dropped after this

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # a scrape every few seconds is no news for the journal


class _Server(WSGIServer):
    """One request at a time; no reverse lookup of the address (``HTTPServer`` does one,
    which hangs on a box whose DNS is away)."""

    def __init__(self, address: tuple, family: socket.AddressFamily, app: Callable):
        self.address_family = family
        super().__init__(address, _Handler)
        self.set_app(app)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]
        self.setup_environ()

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("metrics: request from %s failed", client_address, exc_info=True)


class MetricsServer:
    """The HTTP endpoint of one daemon, serving from a thread of its own."""

    def __init__(self, server: _Server, listen: Listen):
        self._server = server
        self.listen = listen
        self.port: int = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, name="metrics", kwargs={"poll_interval": 0.5}
        )
        self._thread.daemon = True
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _addresses(listen: Listen) -> list[tuple[socket.AddressFamily, tuple]]:
    if not listen.host:  # every interface: IPv6 and IPv4 on one socket, else IPv4
        return [(socket.AF_INET6, ("::", listen.port)), (socket.AF_INET, ("", listen.port))]
    infos = socket.getaddrinfo(
        listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    return [(family, sockaddr) for family, _type, _proto, _name, sockaddr in infos[:1]]


def serve(
    listen: Listen | None, collector: Collector, name: str, hint: str = ""
) -> MetricsServer | None:
    """Serve ``collector`` at ``listen``; None when off, or (one WARNING) when the address
    cannot be used — the daemon runs on without metrics."""
    if listen is None:
        return None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    app = make_wsgi_app(registry)
    error: OSError | None = None
    try:
        for family, address in _addresses(listen):
            try:
                server = _Server(address, family, app)
            except OSError as exc:
                error = exc
                if exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    continue  # no IPv6 here: IPv4 then
                break
            log.info("metrics on http://%s/metrics", listen)
            return MetricsServer(server, listen)
    except OSError as exc:  # the host name does not resolve
        error = exc
    why = (error.strerror or str(error)).lower() if error is not None else "no address"
    log.warning(
        "metrics: cannot listen on %s (%s)%s; %s runs without metrics",
        listen,
        why,
        hint,
        name,
    )
    return None
