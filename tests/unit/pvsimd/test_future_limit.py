"""The limit for readings from the future, on an injected clock (pvsimd/future_limit.py)."""

from __future__ import annotations

import logging

from pvsimd.future_limit import NO_LIMIT_US, FutureLimit

S = 1_000_000
BUILD = 1_764_000_000 * S  # a build date; the clock starts after it


class Clock:
    def __init__(self, now_us: int):
        self.now = now_us

    def __call__(self) -> int:
        return self.now


def test_the_limit_is_the_clock_plus_the_tolerance():
    clock = Clock(BUILD + 3600 * S)
    future = FutureLimit(300, BUILD, clock)
    assert future.limit_us == clock.now + 300 * S
    assert future.exceeded(clock.now + 300 * S) is None
    assert future.exceeded(clock.now - 400 * 86400 * S) is None  # old readings are welcome
    why = future.exceeded(clock.now + 301 * S)
    assert why is not None and why.startswith("future: ts ")
    assert "301 s ahead" in why and "future_tolerance 300 s" in why


def test_a_reading_past_a_stale_limit_is_checked_against_the_clock_now():
    clock = Clock(BUILD + 3600 * S)
    future = FutureLimit(300, BUILD, clock)
    clock.now += 60 * S  # no tick since: the limit is a minute old
    assert future.exceeded(clock.now + 299 * S) is None
    assert future.limit_us == clock.now + 300 * S


def test_no_limit_while_the_clock_is_before_the_build_date(caplog):
    clock = Clock(0)  # 1970: a board without a real-time clock, before NTP
    with caplog.at_level(logging.INFO, logger="pvsimd.future_limit"):
        future = FutureLimit(300, BUILD, clock)
        assert future.clock_untrusted and future.limit_us == NO_LIMIT_US
        assert future.exceeded(BUILD + 10 * 365 * 86400 * S) is None
        future.update()
        assert [r.levelname for r in caplog.records] == ["WARNING"]  # said once
        clock.now = BUILD + S  # NTP stepped the clock; the next tick sees it
        future.update()
        assert future.exceeded(clock.now + 301 * S) is not None
        assert not future.clock_untrusted
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert "before the build date" in caplog.records[0].getMessage()


def test_without_a_build_date_the_clock_is_always_trusted():
    clock = Clock(0)
    future = FutureLimit(60, None, clock)
    assert not future.clock_untrusted
    assert future.exceeded(61 * S) is not None
