"""Signals: SIGTERM and SIGINT ask for a clean stop, SIGHUP for a config reload.

The handlers only set events; the daemons' loops look at them on their next tick.
"""

from __future__ import annotations

import signal
import threading


class Signals:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, _signum: int, _frame: object) -> None:
        self.stop.set()

    def _on_reload(self, _signum: int, _frame: object) -> None:
        self.reload.set()
