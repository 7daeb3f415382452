"""The session loop both daemons run: open a broker session with backoff, run it, reopen
it after a loss, close it on stop — and where the daemon stands with its broker.

Modelled on pika's asynchronous consumer example, where reconnecting is a loop around
the whole lifecycle of one connection (:class:`pvsim.session.Session`).  The daemon
gives the loop three things: how to open a session on a node
(:class:`~pvsim.session.Session` subclass, connected), what to do once one is open,
and what to forget when one is lost.  A connection attempt is a round over the
cluster's nodes in the order of the loop's :class:`~pvsim.nodes.Nodes` (a lost session
moves on to the next node); a stop ends the round between nodes, and a node that
answered but refused the set-up ends it too (the cluster's definitions are the same on
every node).

Backoff (:mod:`pvsim.reconnect`): a session that did useful work (confirms, acks —
:meth:`SessionLoop.did_work`) or lived longer than ``retry_max`` was healthy, and the
next attempt starts from the first delay; one that died right after set-up (a poison
message, an unroutable reading, a flapping broker) counts as a failed attempt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from pvsim.broker import BrokerSettings, node_name, redact
from pvsim.nodes import Nodes
from pvsim.reconnect import BrokerUnavailable, ConnectionLost, ReconnectPolicy

log = logging.getLogger("pvsim.session")


class Runnable(Protocol):
    """What the loop needs of a session: the node it is on, run it (returns when
    paused, raises ConnectionLost when lost) and close it."""

    url: str

    def run(self) -> None: ...

    def close(self) -> None: ...


S = TypeVar("S", bound=Runnable)


class SessionLoop(Generic[S]):
    """Broker sessions one after another (module docstring)."""

    def __init__(
        self,
        settings: BrokerSettings,
        stop: threading.Event,
        idle: Callable[[], None],
        open_session: Callable[[str], S],
        on_open: Callable[[S], None] = lambda _session: None,
        on_lost: Callable[[ConnectionLost], None] = lambda _exc: None,
        nodes: Nodes | None = None,
    ):
        self.settings = settings
        self.stop = stop
        self.nodes = nodes or Nodes(settings.urls)
        self._cluster = f"broker {settings.display_url}"
        if len(self.nodes) > 1:
            self._cluster = f"broker ({len(self.nodes)} nodes)"
        self.policy = ReconnectPolicy(
            settings.retry_initial,
            settings.retry_max,
            stop,
            idle=idle,
            what=self._cluster,
        )
        self._open_session = open_session
        self._on_open = on_open
        self._on_lost = on_lost
        self.session: S | None = None
        self.connected_since: float | None = None
        self.work_done = 0  # useful work in the current session (confirms, acks)
        self.opened = 0  # sessions opened since start

    def connect(self) -> bool:
        """Open a session, retrying with backoff; False when a stop was requested first."""
        self.policy.what = self._cluster
        session = self.policy.call(self._round)
        if session is None:
            return False
        self.nodes.connected(session.url)
        self.session = session
        self.connected_since = time.time()
        self.work_done = 0
        self.opened += 1
        self._on_open(session)
        return True

    def _round(self) -> S:
        """One connection attempt: the nodes one after another until a session opens;
        BrokerUnavailable naming each node's failure (one node: its failure as it is)."""
        urls = self.nodes.to_try()
        failures: list[str] = []
        for url in urls:
            if self.stop.is_set():
                raise BrokerUnavailable("stop requested")
            try:
                return self._open_session(url)
            except BrokerUnavailable as exc:
                if len(urls) == 1:
                    raise
                failures.append(f"{node_name(url)}: {exc}")
                if exc.answered:
                    break
        raise BrokerUnavailable("; ".join(failures))

    def run(self) -> None:
        """Run sessions until one pauses (a stop was requested) or a stop comes while
        reconnecting."""
        while True:
            try:
                self.session.run()
                return  # paused: stop requested
            except ConnectionLost as exc:
                self._lost(exc)
            if self.stop.is_set() or not self.connect():
                return

    def resume(self, doing: str) -> bool:
        """Run the open session once more until it pauses (draining); False when there
        is none or it was lost meanwhile (logged: lost while ``doing``)."""
        if self.session is None:
            return False
        try:
            self.session.run()
        except ConnectionLost as exc:
            log.warning("connection lost while %s: %s", doing, exc)
            self._forget(exc)
            return False
        return True

    def close(self) -> None:
        """Close the session cleanly (the stop step)."""
        session, self.session = self.session, None
        if session is not None:
            try:
                session.close()
                session.run()
            except ConnectionLost:
                pass

    @property
    def reconnects(self) -> int:
        """Sessions opened again after one was lost."""
        return max(0, self.opened - 1)

    @property
    def connected(self) -> bool:
        """A session is open."""
        return self.session is not None and self.connected_since is not None

    def did_work(self, amount: int = 1) -> None:
        self.work_done += amount

    def _lost(self, exc: ConnectionLost) -> None:
        lived = time.time() - (self.connected_since or time.time())
        healthy = self.work_done > 0 or lived > self.settings.retry_max
        if self.nodes.current is not None:
            self.policy.what = f"broker {redact(self.nodes.current)}"
        self.policy.lost(exc, healthy=healthy)
        self._forget(exc)

    def _forget(self, exc: ConnectionLost) -> None:
        """The session is gone: no longer connected, and the daemon forgets its part."""
        self.connected_since = None
        self.session = None
        self.nodes.lost()
        self._on_lost(exc)

    def describe(self, connected: str) -> str:
        """``<connected> since T`` (``<connected> on host:port since T`` with several
        nodes), ``broker unreachable, retrying since T`` or ``connecting``: where the
        daemon stands with its broker, for STATUS."""
        if self.connected_since is not None:
            if len(self.nodes) > 1 and self.nodes.current is not None:
                connected += f" on {node_name(self.nodes.current)}"
            return f"{connected} since {format_time(self.connected_since)}"
        if self.policy.retrying_since is not None:
            return f"broker unreachable, retrying since {format_time(self.policy.retrying_since)}"
        return "connecting"


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
