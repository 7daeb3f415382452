"""One broker connection, from opening to closing, as a chain of named steps.

Modelled on pika's asynchronous consumer example: every connection event is its own
method, and the daemon's reconnect loop wraps the whole session.

    open_connection → on_connection_open → open_channel → on_channel_open
    → declare_exchange → on_exchange_declared → setup_channel (subclass) → ready

:meth:`Session.connect` runs the I/O loop until :meth:`ready` is called (or raises
:class:`BrokerUnavailable`); :meth:`Session.run` runs it until the session ends, returning
after a requested :meth:`close` and raising :class:`ConnectionLost` otherwise.  A periodic
``tick`` runs during both, so the daemon can check for a stop, flush, and feed the watchdog.

A session is on one node (:attr:`Session.url`); trying the nodes of a cluster one after
another is the session loop's business (:mod:`pvsim.session_loop`).
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
from collections.abc import Callable
from typing import ClassVar

import pika
import pika.exceptions
from pika.channel import Channel

from pvsim.broker import BrokerSettings, redact
from pvsim.reconnect import BrokerUnavailable, ConnectionLost

log = logging.getLogger("pvsim.session")

CLOSE_TIMEOUT_S = 5.0  # waiting for the broker's Close-Ok when stopping


def describe(exc: BaseException | None) -> str:
    """A one-line, secret-free description of a pika or socket error."""
    if exc is None:
        return "connection closed"
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or "verification failed"
        if "issuer" in why or "self-signed" in why or "self signed" in why:
            why += " (is [broker] ca_file the CA that signed the broker's certificate?)"
        return f"TLS: the broker's certificate was not accepted: {why}"
    if isinstance(exc, ssl.SSLError):
        return "TLS: " + (exc.reason or str(exc)).lower().replace("_", " ")
    if isinstance(exc, pika.exceptions.ConnectionClosedByBroker | pika.exceptions.ChannelClosed):
        text = f"{exc.reply_code} {exc.reply_text}"
        if "unknown exchange type" in text and "x-consistent-hash" in text:
            text += (
                " (shards need the plugin on every node: rabbitmq-plugins enable "
                "rabbitmq_consistent_hash_exchange)"
            )
        return text
    if isinstance(exc, pika.exceptions.ProbableAuthenticationError):
        return "authentication refused by the broker"
    if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
        return "access to the virtual host refused by the broker"
    attempts = getattr(exc, "exceptions", None)  # AMQPConnectionWorkflowFailed
    if attempts:
        return describe(attempts[-1])
    phase_error = getattr(exc, "exception", None)  # pika's AMQPConnectorPhaseErrorBase
    if isinstance(phase_error, BaseException):
        return describe(phase_error)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError) or type(exc).__name__.endswith("Timeout"):
        return "timed out"
    if isinstance(exc, pika.exceptions.StreamLostError):
        if tls := _tls_alert(str(exc)):
            return tls
        return "connection lost (" + str(exc).removeprefix("Stream connection lost: ") + ")"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, pika.exceptions.AMQPConnectionError) and exc.args:
        inner = exc.args[0]
        if isinstance(inner, BaseException):
            return describe(inner)
        if str(inner).startswith("StreamLostError"):
            if tls := _tls_alert(str(inner)):
                return tls
            return "connection closed during the AMQP handshake"
        return str(inner) or type(exc).__name__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _tls_alert(text: str) -> str | None:
    """'TLS: ...' for a pika error text that wraps an ssl.SSLError (e.g. an alert the
    broker sent because it wants a client certificate)."""
    m = re.search(r"\[SSL: \w+\] ([^(\\'\"]+?)\s*\(_ssl", text)
    if m is None:
        return None
    what = m.group(1)
    if "certificate required" in what:
        what += " (the broker wants a client certificate: [broker] cert_file, key_file)"
    return f"TLS: {what}"


class Session:
    """A broker connection with one channel; subclasses add their setup steps."""

    #: declare the exchange passively (it must exist): needs no configure permission
    passive_exchange: ClassVar[bool] = False

    def __init__(
        self,
        settings: BrokerSettings,
        connection_name: str,
        tick: Callable[[], None],
        tick_interval: float = 0.1,
        stop: threading.Event | None = None,
    ):
        self.settings = settings
        self.connection_name = connection_name
        self._tick = tick
        self.tick_interval = tick_interval
        self._stop = stop  # a stop requested while connecting ends the attempt
        self.connection: pika.SelectConnection | None = None
        self.channel: Channel | None = None
        self.url: str = settings.urls[0]  # the node connected to (or being tried)
        self.is_ready = False
        self._closing = False
        self._paused = False
        self._opened = False  # the AMQP connection to self.url opened
        self._failure: str | None = None

    @property
    def display_url(self) -> str:
        """The node in use, without the password (for logs)."""
        return redact(self.url)

    # --- driving the loop --------------------------------------------------------------

    def connect(self, url: str | None = None) -> None:
        """Open a connection to ``url`` (one of the configured nodes; the first by
        default) and run the setup steps; raises BrokerUnavailable (``answered`` when the
        connection opened and the set-up was refused)."""
        self.url = url or self.settings.urls[0]
        self._opened = False
        self.open_connection()
        self._schedule_tick()
        try:
            self.connection.ioloop.start()
        except ValueError as exc:
            # pika (1.2 to 1.4) raises this out of the I/O loop when the TCP connect
            # completes but the peer resets the socket before pika's getpeername() check
            # (e.g. a load balancer in front of a broker that is down)
            if "getpeername" not in str(exc):
                raise
            self._failure = "connection reset while connecting"
        if not self.is_ready:
            self._shutdown_loop()
            raise BrokerUnavailable(self._failure or "connection closed", answered=self._opened)

    def run(self) -> None:
        """Run until the session ends or is paused.

        Returns after :meth:`close` or :meth:`pause` (also one asked for before this
        call); raises ConnectionLost otherwise.
        """
        try:
            if (
                not self._paused
                and self.connection is not None
                and not self.connection.is_closed
            ):
                self.connection.ioloop.start()
        finally:
            if self.connection is not None and self.connection.is_closed:
                self._shutdown_loop()
        paused, self._paused = self._paused, False
        if paused and self.connection is not None and self.connection.is_open:
            return
        if not self._closing:
            raise ConnectionLost(self._failure or "connection closed")

    def pause(self) -> None:
        """Return from :meth:`run` with the connection still open (e.g. to drain)."""
        self._paused = True
        self._stop_loop()

    def close(self) -> None:
        """Ask for a clean close; the loop stops once the broker confirms it, or after
        :data:`CLOSE_TIMEOUT_S` when it does not."""
        self._closing = True
        if self.connection is None or self.connection.is_closed:
            self._stop_loop()
        elif not self.connection.is_closing:
            self.connection.close()
            self.connection.ioloop.call_later(CLOSE_TIMEOUT_S, self._stop_loop)

    def fail(self, reason: str) -> None:
        """End the session because of a problem; run()/connect() then raise with ``reason``."""
        self._failure = reason
        if self.connection is not None and not (
            self.connection.is_closed or self.connection.is_closing
        ):
            self.connection.close(320, reason[:200])
        else:
            self._stop_loop()

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        return self.connection.ioloop.call_later(delay, callback)

    def wake(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in the I/O loop soon; safe to call from another thread."""
        connection = self.connection
        if connection is not None and not connection.is_closed:
            connection.ioloop.add_callback_threadsafe(callback)

    def _stop_loop(self) -> None:
        if self.connection is not None:
            self.connection.ioloop.stop()

    def _shutdown_loop(self) -> None:
        """Release the ioloop's resources (sockets, wake-up pipe) after the session."""
        if self.connection is not None:
            try:
                self.connection.ioloop.close()
            except Exception:  # noqa: BLE001 - best effort on a dead loop
                log.debug("closing the ioloop failed", exc_info=True)

    def _schedule_tick(self) -> None:
        if self.connection is not None and not self.connection.is_closed:
            self.connection.ioloop.call_later(self.tick_interval, self._on_tick)

    def _on_tick(self) -> None:
        try:
            if not self.is_ready and self._stop is not None and self._stop.is_set():
                self._failure = "stop requested while connecting"
                self._stop_loop()  # connect() gives up: no further attempt follows
                return
            self._tick()
        finally:
            self._schedule_tick()

    # --- the named steps ---------------------------------------------------------------

    def describe(self, exc: BaseException | None) -> str:
        """:func:`describe`, with the password scrubbed out should it ever show up."""
        return self.settings.scrub(describe(exc))

    def open_connection(self) -> None:
        log.debug("connecting to %s", self.display_url)
        try:
            parameters = self.settings.parameters(self.connection_name, self.url)
        except (OSError, ValueError, ssl.SSLError) as exc:  # e.g. the password file went away
            raise BrokerUnavailable(
                "cannot prepare the connection: " + self.describe(exc)
            ) from None
        self.connection = pika.SelectConnection(
            parameters=parameters,
            on_open_callback=self.on_connection_open,
            on_open_error_callback=self.on_connection_open_error,
            on_close_callback=self.on_connection_closed,
        )

    def on_connection_open(self, _connection: pika.SelectConnection) -> None:
        self._opened = True
        self.open_channel()

    def on_connection_open_error(self, _connection: object, error: BaseException) -> None:
        self._failure = self.describe(error)
        self._stop_loop()

    def on_connection_closed(self, _connection: object, reason: BaseException) -> None:
        self.channel = None
        if self._failure is None and not self._closing:
            self._failure = self.describe(reason)
        self._stop_loop()

    def open_channel(self) -> None:
        self.connection.channel(on_open_callback=self.on_channel_open)

    def on_channel_open(self, channel: Channel) -> None:
        self.channel = channel
        channel.add_on_close_callback(self.on_channel_closed)
        self.declare_exchange()

    def on_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        self.channel = None
        if not self._closing:
            text = self.describe(reason)
            if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
                text = f"channel closed: {text}"
            self.fail(text)
        elif self.connection is not None and not (
            self.connection.is_closing or self.connection.is_closed
        ):
            self.connection.close()

    def declare_exchange(self) -> None:
        self.channel.exchange_declare(
            exchange=self.settings.exchange,
            exchange_type="topic",
            durable=True,
            passive=self.passive_exchange,
            callback=self.on_exchange_declared,
        )

    def on_exchange_declared(self, _frame: object) -> None:
        self.setup_channel()

    def setup_channel(self) -> None:
        """Further declarations; subclasses end their chain by calling :meth:`ready`."""
        self.ready()

    def ready(self) -> None:
        self.is_ready = True
        self._stop_loop()  # connect() returns; run() resumes the loop
