"""Polling with a deadline: the one place where tests sleep.

Tests never sleep for a fixed time; they wait for a condition with
:func:`wait_until`, which returns as soon as the condition holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_NOTHING = object()


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "",
) -> T:
    """Call ``predicate`` until it returns a truthy value, and return that value.

    An exception raised by ``predicate`` counts as "not yet" (it is kept for the
    report). When ``timeout`` seconds have passed, raise AssertionError with
    ``message``, the last value returned and the last exception seen.
    """
    deadline = time.monotonic() + timeout
    last_value: object = _NOTHING
    last_exc: BaseException | None = None
    attempts = 0
    while True:
        attempts += 1
        try:
            value = predicate()
        except Exception as exc:  # kept, reported at the deadline
            last_exc = exc
        else:
            if value:
                return value
            last_value = value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(interval, remaining))

    parts = [message or f"condition {_name(predicate)} not met"]
    parts.append(f"after {timeout:g}s ({attempts} attempts)")
    if last_value is not _NOTHING:
        parts.append(f"last value: {last_value!r}")
    if last_exc is not None:
        parts.append(f"last exception: {type(last_exc).__name__}: {last_exc}")
    raise AssertionError("; ".join(parts)) from last_exc


def _name(predicate: Callable[..., object]) -> str:
    return getattr(predicate, "__qualname__", None) or repr(predicate)
