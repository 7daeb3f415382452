"""A TCP proxy on 127.0.0.1 that tests put between a daemon and a broker.

It forwards bytes both ways and lets a test break the path on purpose::

    with TcpProxy("127.0.0.1", 5672) as proxy:
        daemon_url = proxy.url_for()
        proxy.cut()          # RST on every current connection, both sides
        proxy.stall()        # keep sockets open, forward nothing
        proxy.resume()
        proxy.refuse(True)   # accept new connections and close them at once

One thread runs a ``selectors`` loop over every socket (no busy-looping: a
socket is only watched for what it can do next, and nothing at all while
stalled).  The control methods hand their work to that thread and return once
it is done, so after ``cut()`` returns the connections are gone.
"""

from __future__ import annotations

import contextlib
import errno
import queue
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType

_CHUNK = 256 * 1024
_MAX_BUFFER = 1024 * 1024  # per direction; reading stops above it
_CONTROL_TIMEOUT = 10.0


def _abort(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER on, timeout 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Side:
    """One socket of a pair and the bytes waiting to be written to it."""

    __slots__ = ("sock", "outbuf", "read_eof", "write_shut")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.outbuf = bytearray()  # bytes to send to this socket
        self.read_eof = False  # this socket sent FIN
        self.write_shut = False  # we sent FIN to this socket


class _Pair:
    __slots__ = ("client", "upstream", "connected", "closed")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = _Side(client)
        self.upstream = _Side(upstream)
        self.connected = False
        self.closed = False

    def other(self, side: _Side) -> _Side:
        return self.upstream if side is self.client else self.client


class TcpProxy:
    """Threaded TCP proxy from 127.0.0.1:``port`` to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int, listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", listen_port))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]

        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._commands: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = (
            queue.SimpleQueue()
        )
        self._pairs: set[_Pair] = set()
        self._owner: dict[socket.socket, tuple[_Pair, _Side]] = {}
        self._stalled = False
        self._refusing = False
        self._running = False
        self._closed = False
        self._thread: threading.Thread | None = None

        self.connection_count = 0  # pairs open now (including those connecting)
        self.total_connections = 0  # connections accepted since start, refused ones too
        self.refused_connections = 0  # of those, closed at once by refuse(True)
        self.bytes_forwarded = 0

    # -- public API ------------------------------------------------------------

    def start(self) -> TcpProxy:
        if self._thread is not None:
            return self
        if self._closed:
            raise RuntimeError("TcpProxy is closed")
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._running = True
        self._thread = threading.Thread(
            target=self._loop, name=f"TcpProxy-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the proxy: abort every connection and close the listening port."""
        if self._closed:
            return
        if self._thread is not None and self._thread.is_alive():

            def shutdown() -> None:
                self._abort_all()
                self._running = False

            self._call(shutdown)
            self._thread.join(timeout=_CONTROL_TIMEOUT)
        else:
            self._abort_all()
        self._closed = True
        for s in (self._listener, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                s.close()
        with contextlib.suppress(Exception):
            self._sel.close()

    def url_for(self, user: str = "guest", password: str = "guest", vhost: str = "%2F") -> str:
        """An AMQP URL that goes through the proxy."""
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/{vhost}"

    def cut(self) -> None:
        """Abort every current connection with RST, on both sides."""
        self._call(self._abort_all)

    def stall(self) -> None:
        """Stop forwarding bytes both ways; sockets stay open.

        New connections are still accepted (and connected upstream) while
        stalled, but carry no bytes either, like a black-holed network path.
        """

        def do() -> None:
            self._stalled = True
            self._update_all()

        self._call(do)

    def resume(self) -> None:
        """Forward again after stall(), including what was held back."""

        def do() -> None:
            self._stalled = False
            self._update_all()

        self._call(do)

    def refuse(self, refusing: bool = True) -> None:
        """While on, accept new connections and close them at once."""

        def do() -> None:
            self._refusing = refusing

        self._call(do)

    @property
    def stalled(self) -> bool:
        return self._stalled

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<TcpProxy 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]}"
            f" open={self.connection_count} total={self.total_connections}"
            f"{' stalled' if self._stalled else ''}{' refusing' if self._refusing else ''}>"
        )

    # -- control -----------------------------------------------------------------

    def _call(self, fn: Callable[[], None]) -> None:
        """Run fn on the loop thread (directly when it is not running) and wait."""
        if self._thread is None or not self._thread.is_alive():
            fn()
            return
        if threading.current_thread() is self._thread:
            fn()
            return
        done = threading.Event()
        self._commands.put((fn, done))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if not done.wait(_CONTROL_TIMEOUT):
            raise RuntimeError("TcpProxy loop did not answer")

    def _run_commands(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        while True:
            try:
                fn, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            finally:
                done.set()

    # -- the loop ----------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while self._running:
                for key, events in self._sel.select():
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._run_commands()
                    else:
                        pair, side = key.data
                        if not pair.closed:
                            self._on_event(pair, side, events)
        finally:
            self._abort_all()
            # Answer whatever is still queued so that no caller hangs.
            while True:
                try:
                    _, done = self._commands.get_nowait()
                except queue.Empty:
                    break
                done.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.total_connections += 1
            if self._refusing:
                self.refused_connections += 1
                client.close()
                continue
            client.setblocking(False)
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.setblocking(False)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(client, upstream)
            self._pairs.add(pair)
            self._owner[client] = (pair, pair.client)
            self._owner[upstream] = (pair, pair.upstream)
            self.connection_count = len(self._pairs)
            rc = upstream.connect_ex(self.target)
            if rc == 0:
                pair.connected = True
            elif rc not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                self._abort_pair(pair)
                continue
            self._update(pair)

    def _on_event(self, pair: _Pair, side: _Side, events: int) -> None:
        try:
            if self._stalled and pair.connected:
                pass  # an event from before stall() in the same select batch
            elif not pair.connected:
                # Only the upstream socket is watched until its connect ends.
                err = side.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self._abort_pair(pair)
                    return
                pair.connected = True
            else:
                if events & selectors.EVENT_READ:
                    self._read(pair, side)
                if not pair.closed and events & selectors.EVENT_WRITE:
                    self._flush(side)
        except OSError:
            # ECONNRESET, EPIPE, ...: pass the reset on to the other side.
            self._abort_pair(pair)
            return
        if pair.closed:
            return
        if self._finished(pair):
            self._close_pair(pair)
        else:
            self._update(pair)

    def _read(self, pair: _Pair, side: _Side) -> None:
        other = pair.other(side)
        data = side.sock.recv(_CHUNK)
        if not data:
            side.read_eof = True
        else:
            other.outbuf += data
            self.bytes_forwarded += len(data)
        if not self._stalled:
            self._flush(other)

    def _flush(self, side: _Side) -> None:
        """Write what is buffered for side; pass a FIN on when all is written."""
        if side.outbuf:
            try:
                n = side.sock.send(side.outbuf)
            except (BlockingIOError, InterruptedError):
                n = 0
            del side.outbuf[:n]
        if not side.outbuf and self._peer_eof(side) and not side.write_shut:
            side.write_shut = True
            side.sock.shutdown(socket.SHUT_WR)

    def _peer_eof(self, side: _Side) -> bool:
        pair, _ = self._owner[side.sock]
        return pair.other(side).read_eof

    @staticmethod
    def _finished(pair: _Pair) -> bool:
        return all(s.read_eof and s.write_shut for s in (pair.client, pair.upstream))

    def _update(self, pair: _Pair) -> None:
        if pair.closed:
            return
        if not pair.connected:
            self._watch(pair.client.sock, 0, pair, pair.client)
            self._watch(pair.upstream.sock, selectors.EVENT_WRITE, pair, pair.upstream)
            return
        for side in (pair.client, pair.upstream):
            other = pair.other(side)
            events = 0
            if not self._stalled:
                if not side.read_eof and len(other.outbuf) < _MAX_BUFFER:
                    events |= selectors.EVENT_READ
                if side.outbuf or (other.read_eof and not side.write_shut):
                    events |= selectors.EVENT_WRITE
            self._watch(side.sock, events, pair, side)

    def _update_all(self) -> None:
        for pair in list(self._pairs):
            if not self._stalled and pair.connected:
                # Flush what was held back; errors end the pair.
                try:
                    self._flush(pair.client)
                    self._flush(pair.upstream)
                except OSError:
                    self._abort_pair(pair)
                    continue
                if self._finished(pair):
                    self._close_pair(pair)
                    continue
            self._update(pair)

    def _watch(self, sock: socket.socket, events: int, pair: _Pair, side: _Side) -> None:
        try:
            key = self._sel.get_key(sock)
        except KeyError:
            key = None
        if events == 0:
            if key is not None:
                self._sel.unregister(sock)
        elif key is None:
            self._sel.register(sock, events, (pair, side))
        elif key.events != events:
            self._sel.modify(sock, events, (pair, side))

    def _forget(self, pair: _Pair) -> None:
        pair.closed = True
        for side in (pair.client, pair.upstream):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(side.sock)
            self._owner.pop(side.sock, None)
        self._pairs.discard(pair)
        self.connection_count = len(self._pairs)

    def _abort_pair(self, pair: _Pair) -> None:
        if pair.closed:
            return
        self._forget(pair)
        _abort(pair.client.sock)
        _abort(pair.upstream.sock)

    def _close_pair(self, pair: _Pair) -> None:
        if pair.closed:
            return
        self._forget(pair)
        for side in (pair.client, pair.upstream):
            with contextlib.suppress(OSError):
                side.sock.close()

    def _abort_all(self) -> None:
        for pair in list(self._pairs):
            self._abort_pair(pair)
