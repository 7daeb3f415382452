"""Reconnect policy: exponential backoff with jitter, one WARNING per failed attempt."""

from __future__ import annotations

import logging
import threading

import pytest

from pvsim.reconnect import BrokerUnavailable, ReconnectPolicy

INITIAL = 0.001
MAXIMUM = 0.008


@pytest.fixture
def stop():
    return threading.Event()


@pytest.fixture
def policy(stop):
    policy = ReconnectPolicy(INITIAL, MAXIMUM, stop, what="broker test")
    sleeps: list[float] = []
    real_sleep = policy._sleep

    def recording_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        real_sleep(seconds)

    policy._sleep = recording_sleep
    policy.sleeps = sleeps
    return policy


def failing(times: int, result: object = "session"):
    """An attempt that raises BrokerUnavailable ``times`` times, then returns ``result``."""
    calls = []

    def attempt():
        calls.append(1)
        if len(calls) <= times:
            raise BrokerUnavailable(f"connection refused #{len(calls)}")
        return result

    attempt.calls = calls
    return attempt


def bounds(n: int) -> tuple[float, float]:
    """Allowed delay after n failures: doubling from INITIAL, capped, plus jitter <= INITIAL."""
    base = min(INITIAL * 2 ** (n - 1), MAXIMUM)
    return base, base + INITIAL


def test_success_at_first_attempt_returns_result_without_sleeping(policy):
    assert policy.call(failing(0, "ok")) == "ok"
    assert policy.sleeps == []


def test_failed_attempts_are_retried_until_success(policy):
    attempt = failing(3)
    assert policy.call(attempt) == "session"
    assert len(attempt.calls) == 4
    assert len(policy.sleeps) == 3


def test_retry_delays_grow(policy):
    policy.call(failing(5))
    for n, delay in enumerate(policy.sleeps, start=1):
        low, high = bounds(n)
        assert low <= delay <= high, (n, delay)
    assert policy.sleeps[3] > policy.sleeps[0]


def test_one_warning_per_failed_attempt_without_traceback(policy, caplog):
    caplog.set_level(logging.DEBUG, logger="pvsim.reconnect")
    policy.call(failing(3))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    messages = [r.getMessage() for r in warnings]
    for n, message in enumerate(messages, start=1):
        assert f"connection refused #{n}" in message
        assert f"attempt {n} failed" in message
        assert message.startswith("broker test unavailable")
    assert all(r.exc_info is None for r in caplog.records)
    assert "Traceback" not in caplog.text


def test_other_exceptions_are_not_retried(policy):
    def attempt():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        policy.call(attempt)
    assert policy.sleeps == []


def test_returns_none_when_stop_is_set_before(policy, stop):
    stop.set()
    attempt = failing(0)
    assert policy.call(attempt) is None
    assert attempt.calls == []


def test_returns_none_when_stop_is_set_while_retrying(policy, stop):
    calls = []

    def attempt():
        calls.append(1)
        if len(calls) == 2:
            stop.set()
        raise BrokerUnavailable("refused")

    assert policy.call(attempt) is None
    assert len(calls) == 2


class StopDuringWait(threading.Event):
    """A stop event that is set while the policy waits (as SIGTERM would do)."""

    def wait(self, timeout: float | None = None) -> bool:
        self.set()
        return True


def test_stop_during_backoff_ends_the_wait_without_another_attempt():
    stop = StopDuringWait()
    policy = ReconnectPolicy(3600.0, 3600.0, stop)  # an hour's wait, cut short by the stop
    attempt = failing(1)
    assert policy.call(attempt) is None
    assert len(attempt.calls) == 1


def test_stop_during_pending_wait_after_a_loss_makes_no_attempt():
    stop = StopDuringWait()
    policy = ReconnectPolicy(3600.0, 3600.0, stop)
    policy.lost("closed right after set-up", healthy=False)
    attempt = failing(0)
    assert policy.call(attempt) is None
    assert attempt.calls == []


def test_sleep_keeps_calling_idle(stop):
    policy = ReconnectPolicy(INITIAL, MAXIMUM, stop)
    idles = []
    policy.idle = lambda: idles.append(1)
    policy.call(failing(2))
    assert len(idles) >= 2


@pytest.mark.parametrize("n", range(1, 12))
def test_delay_grows_exponentially_and_is_capped(stop, n):
    policy = ReconnectPolicy(INITIAL, MAXIMUM, stop)
    low, high = bounds(n)
    for _ in range(20):  # jitter is random: check it a few times
        assert low <= policy.delay(n) <= high


def test_delay_is_capped_at_maximum_for_many_failures(stop):
    policy = ReconnectPolicy(1.0, 30.0, stop)
    assert 1.0 <= policy.delay(1) <= 2.0
    assert 2.0 <= policy.delay(2) <= 3.0
    assert 4.0 <= policy.delay(3) <= 5.0
    assert 30.0 <= policy.delay(100) <= 31.0
    assert 30.0 <= policy.delay(10_000) <= 31.0


def test_lost_unhealthy_makes_next_call_wait_first(policy, caplog):
    caplog.set_level(logging.WARNING, logger="pvsim.reconnect")
    policy.lost("channel closed by broker", healthy=False)
    attempt = failing(0)
    assert policy.call(attempt) == "session"
    assert len(policy.sleeps) == 1
    low, high = bounds(1)
    assert low <= policy.sleeps[0] <= high
    assert "channel closed by broker" in caplog.text


def test_repeated_unhealthy_losses_grow_the_wait(policy):
    for _ in range(3):
        policy.lost("flapping", healthy=False)
        policy.call(failing(0))
    low, high = bounds(3)
    assert low <= policy.sleeps[2] <= high
    assert policy.sleeps[2] > policy.sleeps[0]


def test_failures_after_unhealthy_losses_continue_the_backoff(policy):
    policy.lost("flapping", healthy=False)
    policy.lost("flapping", healthy=False)
    policy.call(failing(1))
    # the pending wait after 2 setbacks, then the retry after the 3rd failure
    assert bounds(2)[0] <= policy.sleeps[0] <= bounds(2)[1]
    assert bounds(3)[0] <= policy.sleeps[1] <= bounds(3)[1]


def test_lost_healthy_resets_the_backoff(policy):
    policy.lost("flapping", healthy=False)
    policy.lost("flapping", healthy=False)
    policy.lost("worked for an hour", healthy=True)
    assert policy.call(failing(0)) == "session"
    assert policy.sleeps == []
    policy.call(failing(1))
    assert bounds(1)[0] <= policy.sleeps[0] <= bounds(1)[1]


def test_retrying_since_is_set_while_failing_and_cleared_on_success(policy):
    seen = []

    def attempt():
        seen.append(policy.retrying_since)
        if len(seen) < 3:
            raise BrokerUnavailable("refused")
        return "ok"

    policy.call(attempt)
    assert seen[0] is None and seen[1] is not None and seen[2] == seen[1]
    assert policy.retrying_since is None


def test_policy_works_without_deprecation_warnings(stop):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        policy = ReconnectPolicy(0.5, 30.0, stop)
        assert 0.5 <= policy.delay(1) <= 1.0
