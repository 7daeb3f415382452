"""BrokerLink: a session that did no work backs off; status says connected or retrying."""

from __future__ import annotations

import threading

from freezegun import freeze_time

from pvsim.broker import BrokerSettings
from pvsim.broker_link import BrokerLink
from pvsim.reconnect import BrokerUnavailable


def _link() -> BrokerLink:
    settings = BrokerSettings.__new__(BrokerSettings)
    object.__setattr__(settings, "url", "amqp://guest:secret@localhost/%2F")
    object.__setattr__(settings, "retry_initial", 0.001)
    object.__setattr__(settings, "retry_max", 30.0)
    return BrokerLink(settings, threading.Event(), idle=lambda: None)


def test_a_session_lost_before_doing_work_backs_off_more_each_time():
    link = _link()
    assert link.open(lambda: "session") == "session"
    link.lost("channel closed")
    assert link.policy.setbacks == 1
    link.open(lambda: "session")
    link.lost("channel closed")
    assert link.policy.setbacks == 2


def test_a_session_that_did_work_resets_the_backoff():
    link = _link()
    link.open(lambda: "session")
    link.lost("x")
    link.open(lambda: "session")
    link.did_work(5)
    link.lost("connection reset")
    assert link.policy.setbacks == 0


def test_a_long_lived_session_counts_as_healthy_even_without_work():
    link = _link()
    with freeze_time("2026-11-24 10:00:00") as frozen:
        link.open(lambda: "session")
        frozen.tick(31)  # longer than retry_max
        link.lost("idle connection dropped")
    assert link.policy.setbacks == 0


def test_describe_says_connected_retrying_or_connecting():
    link = _link()
    assert link.describe("consuming q") == "connecting"
    with freeze_time("2026-11-24 10:00:00"):
        link.open(lambda: "session")
        assert link.describe("consuming q").startswith("consuming q since 2026-11-24")
        link.lost("gone")
    attempts = iter([BrokerUnavailable("connection refused"), "session"])

    def attempt():
        result = next(attempts)
        if isinstance(result, Exception):
            assert "retrying since" in link.describe("connected")
            raise result
        return result

    assert link.open(attempt) == "session"
    assert "secret" not in link.describe("connected")
