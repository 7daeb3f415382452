"""Group commit: make written rows durable in a thread of their own.

With ``fsync = batch`` pvsimd writes a batch of rows and asks the :class:`Syncer` to make
them durable (one ``syncfs``); meanwhile its I/O loop goes on taking deliveries and
buffering their rows.  Requests that arrive while a sync runs are merged: the next sync
covers all of them.  Each finished sync is put on a queue with the newest request it
covered, and the I/O loop is woken to collect it (:meth:`Syncer.results`) and to
acknowledge what is now on disk.

The thread never touches pika or the day files' bookkeeping; it only calls ``sync``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("pvsimd.files")

T = TypeVar("T")


class Syncer(Generic[T]):
    """Runs ``sync()`` for the newest pending request; ``wake()`` after each result."""

    def __init__(self, sync: Callable[[], None], wake: Callable[[], None]):
        self._sync = sync
        self._wake = wake
        self._cond = threading.Condition()
        self._pending: T | None = None
        self._has_pending = False
        self._running = False
        self._stopping = False
        self._results: queue.SimpleQueue[tuple[T, OSError | None]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="pvsimd-sync", daemon=True)
        self._thread.start()

    def request(self, token: T) -> None:
        """Sync what was written before this call; ``token`` comes back with the result."""
        with self._cond:
            self._pending = token
            self._has_pending = True
            self._cond.notify_all()

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._running or self._has_pending

    def results(self) -> list[tuple[T, OSError | None]]:
        """Finished syncs, oldest first: (newest token covered, error or None)."""
        out = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no sync runs or waits; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not (self._running or self._has_pending), timeout=timeout
            )

    def stop(self, timeout: float | None = None) -> None:
        """Finish what was requested, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._has_pending or self._stopping)
                if not self._has_pending:
                    return  # stopping, nothing left
                token, self._pending, self._has_pending = self._pending, None, False
                self._running = True
            error: OSError | None = None
            try:
                self._sync()
            except OSError as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - a bug: report it as a failed sync
                log.exception("sync failed unexpectedly")
                error = OSError(5, f"sync failed: {exc}")
            self._results.put((token, error))
            with self._cond:
                self._running = False
                self._cond.notify_all()
            try:
                self._wake()
            except Exception:  # noqa: BLE001 - the loop may be gone; results() still has it
                log.debug("could not wake the I/O loop", exc_info=True)
