"""Where a daemon stands with its broker: connected since when, or retrying since when.

:class:`BrokerLink` wraps the reconnect policy for one daemon.  It opens sessions
(:meth:`open`), learns when one is lost (:meth:`lost`), and judges whether the lost
session did useful work: only then does the backoff start again from its first delay, so
a session that keeps dying right after set-up (a poison message, an unroutable reading)
is retried with growing delays like a broker that is down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from pvsim.broker import BrokerSettings
from pvsim.reconnect import ReconnectPolicy

T = TypeVar("T")


class BrokerLink:
    def __init__(self, settings: BrokerSettings, stop: threading.Event, idle: Callable[[], None]):
        self.settings = settings
        self.policy = ReconnectPolicy(
            settings.retry_initial,
            settings.retry_max,
            stop,
            idle=idle,
            what=f"broker {settings.display_url}",
        )
        self.connected_since: float | None = None
        self.work_done = 0  # useful work in the current session (confirms, acks)

    def open(self, attempt: Callable[[], T]) -> T | None:
        """Open a session with backoff; None when a stop was requested first."""
        session = self.policy.call(attempt)
        if session is not None:
            self.connected_since = time.time()
            self.work_done = 0
        return session

    def did_work(self, amount: int = 1) -> None:
        self.work_done += amount

    def lost(self, reason: object) -> None:
        """The current session ended unasked; logs it and sets the next delay."""
        lived = time.time() - (self.connected_since or time.time())
        healthy = self.work_done > 0 or lived > self.settings.retry_max
        self.policy.lost(reason, healthy=healthy)
        self.connected_since = None

    def describe(self, connected: str) -> str:
        """``<connected> since T``, ``broker unreachable, retrying since T`` or ``connecting``."""
        if self.connected_since is not None:
            return f"{connected} since {format_time(self.connected_since)}"
        if self.policy.retrying_since is not None:
            return f"broker unreachable, retrying since {format_time(self.policy.retrying_since)}"
        return "connecting"


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
