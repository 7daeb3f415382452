"""Prometheus metrics, for both daemons: the ``[metrics]`` section and how a daemon
declares its metrics and hands in their values.

The daemons count with plain integers where things happen — pvsimd's hot path takes
tens of thousands of readings a second, and prometheus_client's ``Counter.inc()`` takes
a lock each time — and nothing is done for metrics until a scrape: then the endpoint
(:mod:`pvsim.metrics_endpoint`) asks the daemon for the current values.

Each daemon declares its metrics as :class:`Metric` tuples (name, type, labels,
meaning); the README's tables are those declarations (a test compares them), and the
endpoint exposes exactly them.  The names follow Prometheus's conventions: the
daemon's name as prefix, base units (seconds, bytes, watts), ``_total`` for counters,
no per-meter labels (ten thousand meters must not make ten thousand series).

This module does not import prometheus_client: a daemon whose ``[metrics] listen`` is
empty never loads it nor its HTTP server (about 2 MB of a small box's memory).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pvsim import build_info
from pvsim import config as c

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
