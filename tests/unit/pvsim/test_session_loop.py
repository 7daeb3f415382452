"""The session loop: a session that did no work backs off; status says connected or
retrying."""

from __future__ import annotations

import threading
import time

from freezegun import freeze_time

from pvsim.broker import BrokerSettings, node_name
from pvsim.reconnect import BrokerUnavailable, ConnectionLost
from pvsim.session_loop import SessionLoop


class Session:
    """Runs until it pauses (returns) or is lost (raises), as its script says."""

    def __init__(self, *outcomes: str, on_run=lambda: None, url: str = ""):  # noqa: ANN001
        self.outcomes = list(outcomes)
        self.on_run = on_run
        self.closed = False
        self.url = url  # "": the first node it was offered

    def run(self) -> None:
        self.on_run()
        outcome = self.outcomes.pop(0) if self.outcomes else "pause"
        if outcome == "lost":
            raise ConnectionLost("gone")

    def close(self) -> None:
        self.closed = True


def _settings(url: str = "amqp://guest:secret@localhost/%2F") -> BrokerSettings:
    return BrokerSettings(url=url, retry_initial=0.001, retry_max=30.0)


def _loop(*sessions: Session, settings: BrokerSettings | None = None, **hooks) -> SessionLoop:  # noqa: ANN003
    offered: list[tuple[str, ...]] = []

    def open_session(url):
        offered.append(url)
        result = sessions_left.pop(0)
        if isinstance(result, Exception):
            raise result
        result.url = url
        return result

    sessions_left = list(sessions)
    loop = SessionLoop(
        settings or _settings(), threading.Event(), idle=lambda: None,
        open_session=open_session, **hooks,
    )  # fmt: skip
    loop.offered = offered
    return loop


def test_a_lost_session_is_reopened_and_the_hooks_say_so():
    opened, lost = [], []
    first, second = Session("lost"), Session("pause")
    loop = _loop(first, second, on_open=opened.append, on_lost=lost.append)
    assert loop.connect() and loop.session is first
    loop.run()  # first is lost, second opened, then it pauses (a stop)
    assert opened == [first, second] and [str(e) for e in lost] == ["gone"]
    assert loop.session is second
    loop.close()
    assert second.closed and loop.session is None


def test_sessions_lost_before_doing_work_back_off_more_each_time():
    loop = _loop(Session("lost"), Session("lost"), Session("pause"))
    loop.connect()
    loop.run()
    assert loop.policy.setbacks == 2


def test_a_session_that_did_work_resets_the_backoff():
    loop = _loop(Session("lost"), Session("lost"), Session("lost"), Session("pause"))
    loop.connect()
    loop.session.on_run = lambda: None  # the first: lost without work
    loop._on_open = lambda session: setattr(session, "on_run", lambda: loop.did_work(5))
    loop.run()  # the second and third did work before they were lost
    assert loop.policy.setbacks == 0


def test_a_long_lived_session_counts_as_healthy_even_without_work():
    with freeze_time("2026-11-24 10:00:00") as frozen:
        loop = _loop(Session("lost", on_run=lambda: frozen.tick(31)), Session("pause"))
        loop.connect()
        loop.run()  # it lived longer than retry_max
    assert loop.policy.setbacks == 0


def test_a_stop_while_reconnecting_ends_the_loop():
    loop = _loop(Session("lost"))
    loop.connect()
    loop.stop.set()
    loop.run()
    assert loop.session is None


def test_resume_reports_a_loss_while_draining(caplog):
    lost = []
    loop = _loop(Session("pause", "lost"), on_lost=lost.append)
    loop.connect()
    assert loop.resume("draining")
    assert not loop.resume("draining")
    assert lost and loop.session is None
    assert "connection lost while draining: gone" in caplog.text
    assert not loop.resume("draining")  # no session: nothing to do


def test_describe_says_connected_retrying_or_connecting():
    attempts = iter([BrokerUnavailable("connection refused"), "check", Session()])
    loop = _loop()

    def attempt(url):
        result = next(attempts)
        if result == "check":
            assert "retrying since" in loop.describe("connected")
            result = next(attempts)
        if isinstance(result, Exception):
            raise result
        result.url = url
        return result

    assert loop.describe("consuming q") == "connecting"
    loop._open_session = attempt
    assert loop.connect()
    with freeze_time("2026-11-24 10:00:00"):
        loop.connected_since = time.time()
        assert loop.describe("consuming q").startswith("consuming q since 2026-11-2")
    assert "secret" not in loop.describe("connected")


NODES = " ".join(f"amqp://guest:secret@node{i}.local:5672/%2F" for i in range(3))


def test_a_lost_session_moves_on_to_the_next_node_and_status_names_the_node():
    first, second = Session("lost"), Session("pause")
    down = BrokerUnavailable("connection refused")
    loop = _loop(first, down, second, settings=_settings(NODES))
    a, b, c = loop.nodes.urls
    assert sorted((a, b, c)) == sorted(NODES.split())
    assert loop.connect() and loop.offered == [a]
    loop.connected_since = time.time()
    assert "secret" not in loop.describe("x")
    assert loop.describe("consuming q").startswith(f"consuming q on {node_name(a)} since")
    loop.run()  # a's session is lost: the next round starts with b (down), then c
    assert loop.offered == [a, b, c]
    assert loop.nodes.current == c and loop.session is second


def test_a_round_names_every_node_that_failed_and_backs_off_only_then():
    refused = [BrokerUnavailable("connection refused") for _ in range(3)]
    loop = _loop(*refused, Session("pause"), settings=_settings(NODES))
    warnings = []
    loop.policy._before_sleep = lambda state: warnings.append(str(state.outcome.exception()))
    assert loop.connect()
    a, b, c = loop.nodes.urls
    assert loop.offered == [a, b, c, a]  # one round of three, a pause, then a again
    assert warnings == [
        "; ".join(f"{node_name(u)}: connection refused" for u in (a, b, c))
    ]


def test_a_node_that_refused_the_set_up_ends_the_round():
    refused = BrokerUnavailable("channel closed: 406 PRECONDITION_FAILED", answered=True)
    loop = _loop(refused, Session("pause"), settings=_settings(NODES))
    assert loop.connect()
    a, _b, _c = loop.nodes.urls
    assert loop.offered == [a, a]  # the other nodes were not asked: they would say the same


def test_a_stop_ends_a_round_between_nodes():
    loop = _loop(settings=_settings(NODES))

    def stop_then_fail(url):
        loop.offered.append(url)
        loop.stop.set()
        raise BrokerUnavailable("timed out")

    loop._open_session = stop_then_fail
    assert not loop.connect()
    assert len(loop.offered) == 1


def test_a_single_url_is_offered_alone_and_status_names_no_node():
    loop = _loop(Session("pause"))
    assert loop.connect()
    assert loop.offered == ["amqp://guest:secret@localhost/%2F"]
    loop.connected_since = time.time()
    assert loop.describe("consuming q").startswith("consuming q since ")
