"""sd_notify: READY, STATUS, WATCHDOG, RELOADING and STOPPING for a Type=notify service.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a cheap no-op.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

import sdnotify


class Notifier:
    """Tells systemd how the daemon is (READY, STATUS, WATCHDOG, RELOADING, STOPPING);
    does nothing outside a notify unit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        # sdnotify connects to $NOTIFY_SOCKET (abstract "@" names included) by itself
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._sd = sdnotify.SystemdNotifier() if self.enabled else None
        self.watchdog_interval = _watchdog_interval(os.environ)
        self._clock = clock
        self._last_watchdog = float("-inf")
        self._last_status: str | None = None
        self._stopping_sent = False

    def _send(self, message: str) -> None:
        if self._sd is not None:
            self._sd.notify(message)

    def ready(self, status: str | None = None) -> None:
        self._send("READY=1" + (f"\nSTATUS={status}" if status else ""))
        if status:
            self._last_status = status

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self._send(f"STATUS={text}")

    def watchdog(self) -> None:
        """Feed the watchdog, at most twice per WatchdogSec."""
        if self.watchdog_interval is None:
            return
        now = self._clock()
        if now - self._last_watchdog >= self.watchdog_interval / 2:
            self._last_watchdog = now
            self._send("WATCHDOG=1")

    def reloading(self) -> None:
        self._send("RELOADING=1")

    def stopping(self) -> None:
        """STOPPING=1, once (the lifecycle says it on every way out)."""
        if not self._stopping_sent:
            self._stopping_sent = True
            self._send("STOPPING=1")


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000
    except ValueError:
        return None
