"""Reconnect policy: exponential backoff with jitter, one WARNING per attempt (tenacity).

:meth:`ReconnectPolicy.call` retries an attempt that raises :class:`BrokerUnavailable`
until it succeeds or a stop is requested, with tenacity's own parts: ``Retrying`` with
``retry_if_exception_type``, ``stop_when_event_set`` and ``wait_exponential_jitter``
(the first delay ``retry_initial``, doubling, plus up to ``retry_initial`` of jitter,
``retry_max`` at most).  Two things are ours:

* the sleep, which is interruptible by the stop and keeps calling ``idle`` (the daemons
  feed the watchdog there) — tenacity's ``sleep_using_event`` cannot do the latter;
* *setbacks*: a session that is lost before it did any useful work (say the broker
  closes the channel right after set-up) counts as a failed attempt too.
  :meth:`ReconnectPolicy.lost` makes the next :meth:`call` wait first, and the attempts
  after it continue the backoff where the losses left it, so a flapping broker is
  retried with growing delays rather than in a tight loop.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import tenacity

T = TypeVar("T")
log = logging.getLogger("pvsim.reconnect")


class BrokerUnavailable(Exception):
    """The broker could not be reached or refused to set us up; worth retrying.
    ``answered``: the node answered (the connection opened) and refused the set-up — the
    other nodes of its cluster would say the same."""

    def __init__(self, *args: object, answered: bool = False):
        super().__init__(*args)
        self.answered = answered


class ConnectionLost(Exception):
    """An established session ended without being asked to."""


def exponential_jitter(initial: float, maximum: float) -> Callable[[object], float]:
    """tenacity's ``wait_exponential_jitter`` starting at ``initial``, with up to
    ``initial`` of jitter.  Its first argument is called ``initial`` in tenacity 8 and
    ``multiplier`` from 9 on (where ``initial`` is deprecated): the one adapter needed."""
    first = (
        "multiplier"
        if "multiplier" in inspect.signature(tenacity.wait_exponential_jitter).parameters
        else "initial"
    )
    return tenacity.wait_exponential_jitter(**{first: initial}, max=maximum, jitter=initial)


class _Attempt(NamedTuple):
    """What a tenacity wait strategy reads of a retry state."""

    attempt_number: int


class ReconnectPolicy:
    """When to try the broker again: backoff with jitter over attempts and early losses
    (module docstring)."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        stop: threading.Event,
        idle: Callable[[], None] = lambda: None,
        what: str = "broker",
    ):
        self.stop = stop
        self.idle = idle
        self.what = what
        self._wait = exponential_jitter(initial, maximum)
        self.setbacks = 0  # failed attempts and early losses since the last healthy session
        self.retrying_since: float | None = None  # wall clock of the first failure
        self._pending_delay = 0.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures in a row."""
        return self._wait(_Attempt(failures))

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(left, 0.5))
            self.idle()

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
        if self.stop.is_set():
            return None
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(BrokerUnavailable),
            wait=lambda state: self.delay(self.setbacks + state.attempt_number),
            stop=tenacity.stop_when_event_set(self.stop),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

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
