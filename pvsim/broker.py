"""Broker settings shared by both daemons: the ``[broker]`` config section and pika parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pika

from pvsim import config as c

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
DEFAULT_EXCHANGE = "meter.readings"

_NAME = c.pattern(r"[A-Za-z0-9_.:-]{1,255}", "1-255 letters, digits, '.', '_', ':' or '-'")


def schema(**extra: c.Option) -> dict[str, c.Option]:
    """The ``[broker]`` section; daemons add their own keys (e.g. ``queue``)."""
    return {
        "url": c.Option(c.url("amqp", "amqps"), DEFAULT_URL, "broker URL, amqp:// or amqps://"),
        "exchange": c.Option(_NAME, DEFAULT_EXCHANGE, "durable topic exchange of readings"),
        "heartbeat": c.Option(c.integer(0, 600), "30", "AMQP heartbeat in seconds (0: off)"),
        "connect_timeout": c.Option(c.number(above=0), "10", "seconds to open a connection"),
        "blocked_timeout": c.Option(
            c.number(above=0), "60", "seconds a connection may stay blocked before reconnecting"
        ),
        "retry_initial": c.Option(c.number(above=0), "1", "first reconnect delay, seconds"),
        "retry_max": c.Option(c.number(above=0), "30", "longest reconnect delay, seconds"),
        **extra,
    }


queue_name = _NAME


@dataclass(frozen=True)
class BrokerSettings:
    url: str
    exchange: str
    heartbeat: int
    connect_timeout: float
    blocked_timeout: float
    retry_initial: float
    retry_max: float

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> BrokerSettings:
        return cls(**{k: section[k] for k in cls.__dataclass_fields__})

    def parameters(self, connection_name: str) -> pika.URLParameters:
        params = pika.URLParameters(self.url)
        params.heartbeat = self.heartbeat
        params.blocked_connection_timeout = self.blocked_timeout
        params.socket_timeout = self.connect_timeout
        params.stack_timeout = self.connect_timeout * 2
        params.connection_attempts = 1
        params.client_properties = {"connection_name": connection_name}
        return params

    @property
    def display_url(self) -> str:
        return redact(self.url)


def redact(url: str) -> str:
    """The URL without its password, for logs and status lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}:***@{netloc}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
