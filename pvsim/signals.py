"""Signals: SIGTERM and SIGINT ask for a clean stop, SIGHUP for a config reload.

A signal handler may only do async-signal-safe work: it interrupts the main thread at
an arbitrary point, possibly inside a lock the handler would need.  (Setting a
``threading.Event`` in the handler deadlocks when a second signal arrives while the
first handler is inside ``Event.set``: the second call waits for the lock the first
one holds, on the same thread, for ever.)  So:

* the moment a signal arrives, CPython's C-level handler writes its number to a pipe
  (:func:`signal.set_wakeup_fd`, one ``write(2)``: async-signal-safe);
* the Python-level handlers, which the main thread runs later between two bytecodes,
  do nothing at all — no lock, no I/O, no logging;
* a thread of its own, ``signals``, reads the numbers from the pipe and turns them
  into the events the daemons' threads wait on (:attr:`Signals.stop`,
  :attr:`Signals.reload`), in order, outside any handler.

Any storm of signals therefore ends as a set ``stop`` event (and maybe a reload or
two); once the daemon has stopped, :meth:`Signals.finished` ignores the rest.  Stops
and reloads are idempotent, so numbers dropped while the pipe is full (64 KiB of them
unread) lose nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger("pvsim.signals")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNALS = (signal.SIGHUP,)


def _noted(_signum: int, _frame: object) -> None:
    """The Python-level handler: the C-level one has already written the number."""


class Signals:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()
        self._read_fd: int | None = None
        self._write_fd: int | None = None
        self._old_wakeup_fd = -1
        self._old_handlers: dict[int, object] = {}
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        """Take over SIGTERM, SIGINT and SIGHUP (from the main thread)."""
        if self._thread is not None:
            return
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # set_wakeup_fd needs a non-blocking fd
        self._thread = threading.Thread(target=self._watch, name="signals", daemon=True)
        self._thread.start()
        self._old_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in (*STOP_SIGNALS, *RELOAD_SIGNALS):
            self._old_handlers[signum] = signal.signal(signum, _noted)

    def uninstall(self) -> None:
        """Give the signals back to the handlers before :meth:`install` (for tests)."""
        if self._thread is None:
            return
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers.clear()
        signal.set_wakeup_fd(self._old_wakeup_fd)
        os.close(self._write_fd)  # the watcher reads end-of-file and ends
        self._thread.join(5)
        os.close(self._read_fd)
        self._thread = self._read_fd = self._write_fd = None

    def finished(self) -> None:
        """The daemon has stopped and is about to exit: from now on the three signals are
        ignored.  (Python's exit would otherwise put their default actions back, and a
        late SIGTERM or SIGHUP of a storm would kill the finished process.)"""
        for signum in (*STOP_SIGNALS, *RELOAD_SIGNALS):
            signal.signal(signum, signal.SIG_IGN)

    def _watch(self) -> None:
        """The ``signals`` thread: numbers from the pipe become events."""
        while True:
            try:
                data = os.read(self._read_fd, 512)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                self._deliver(signum)

    def _deliver(self, signum: int) -> None:
        if signum in STOP_SIGNALS:
            if not self.stop.is_set():
                log.info("%s received: stopping", signal.Signals(signum).name)
            self.stop.set()
        elif signum in RELOAD_SIGNALS:
            self.reload.set()
