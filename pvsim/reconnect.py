"""Reconnect policy: exponential backoff with jitter (tenacity), one WARNING per attempt.

:meth:`ReconnectPolicy.call` retries an attempt that raises :class:`BrokerUnavailable`
until it succeeds or a stop is requested.  A session that is lost before it did any
useful work (say the broker closes the channel right after set-up) counts as a failed
attempt too: :meth:`ReconnectPolicy.lost` makes the next :meth:`call` wait first, so a
flapping broker is retried with growing delays rather than in a tight loop.  Sleeps are
interruptible and keep calling ``idle`` (the daemons feed the watchdog there).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")
log = logging.getLogger("pvsim.reconnect")


class BrokerUnavailable(Exception):
    """The broker could not be reached or refused to set us up; worth retrying."""


class ConnectionLost(Exception):
    """An established session ended without being asked to."""


class ReconnectPolicy:
    def __init__(
        self,
        initial: float,
        maximum: float,
        stop: threading.Event,
        idle: Callable[[], None] = lambda: None,
        what: str = "broker",
    ):
        self.initial = initial
        self.maximum = maximum
        self.stop = stop
        self.idle = idle
        self.what = what
        self.setbacks = 0  # failed attempts and early losses since the last healthy session
        self.retrying_since: float | None = None  # wall clock of the first failure
        self._pending_delay = 0.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures in a row: ``initial``, doubling with
        each failure, plus up to ``initial`` of random jitter; ``maximum`` at most.

        (tenacity's wait_exponential_jitter formula, computed here because its ``initial``
        argument is deprecated in tenacity 9 and its replacement unknown to tenacity 8.)
        """
        try:
            base = self.initial * 2.0 ** (failures - 1)
        except OverflowError:
            base = self.maximum
        return max(0.0, min(base + random.uniform(0, self.initial), self.maximum))

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(left, 0.5))
            self.idle()

    def _retry_wait(self, state: tenacity.RetryCallState) -> float:
        return self.delay(self.setbacks + state.attempt_number)

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        if self.retrying_since is None:
            self.retrying_since = time.time()
        log.warning(
            "%s unavailable: %s; attempt %d failed, retrying in %.1f s",
            self.what,
            exc,
            self.setbacks + state.attempt_number,
            delay,
        )

    def lost(self, reason: object, healthy: bool) -> None:
        """A session ended; ``healthy`` when it did useful work before (resets the backoff)."""
        if healthy:
            self.setbacks = 0
            self._pending_delay = 0.0
        else:
            self.setbacks += 1
            self._pending_delay = self.delay(self.setbacks)
        self.retrying_since = self.retrying_since or time.time()
        log.warning(
            "connection to %s lost: %s; reconnecting in %.1f s",
            self.what,
            reason,
            self._pending_delay,
        )

    def call(self, attempt: Callable[[], T]) -> T | None:
        """Run ``attempt`` until it succeeds; None when a stop was requested first."""
        if self._pending_delay:
            self._sleep(self._pending_delay)
            self._pending_delay = 0.0
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(BrokerUnavailable),
            wait=self._retry_wait,
            stop=lambda _state: self.stop.is_set(),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        if self.stop.is_set():
            return None

        def guarded() -> T:
            if self.stop.is_set():  # stop requested during the backoff: no further attempt
                raise BrokerUnavailable("stop requested")
            return attempt()

        try:
            result = retrying(guarded)
        except BrokerUnavailable:
            return None  # stop requested while retrying
        self.retrying_since = None
        return result
