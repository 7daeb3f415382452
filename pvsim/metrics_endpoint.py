"""The Prometheus endpoint of a daemon: the collector that reads the daemon's values when
Prometheus scrapes, and the HTTP server that serves them.

Imported only when ``[metrics] listen`` is set (``Daemon._serve_metrics`` in
:mod:`pvsim.lifecycle`).
At a scrape :class:`Collector` asks the daemon for its current values
(:mod:`pvsim.metrics` declares them) and hands them to prometheus_client as metric
families, which writes the exposition format (text or OpenMetrics, as the scraper asks).

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
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.core import Metric as Family

from pvsim.metrics import Listen, Metric, Value

log = logging.getLogger("pvsim.metrics")

REQUEST_TIMEOUT_S = 10.0


def family(metric: Metric, value: Value) -> Family:
    """The metric family prometheus_client writes out, with ``value``."""
    doc = metric.doc.replace("`", "")
    if metric.type == "counter":
        family: Family = CounterMetricFamily(metric.name, doc, labels=metric.labels or None)
    else:
        family = GaugeMetricFamily(metric.name, doc, labels=metric.labels or None)
    if metric.labels:
        for label_values, number in value.items():
            family.add_metric(list(label_values), float(number))
    else:
        family.add_metric([], float(value))
    return family


class Collector:
    """Reads a daemon's values when Prometheus scrapes (a prometheus_client collector)."""

    def __init__(self, metrics: Sequence[Metric], read: Callable[[], Mapping[str, Value]]):
        self.metrics = tuple(metrics)
        self.read = read

    def collect(self) -> Iterable[Family]:
        values = self.read()
        return [family(m, values[m.name]) for m in self.metrics]


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
