"""sd_notify: the datagrams a Type=notify service sends to systemd's socket."""

from __future__ import annotations

import os
import socket

import pytest

from pvsim.notify import Notifier


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    """A datagram socket standing in for systemd's notify socket."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_ready_sends_ready_with_status(systemd):
    Notifier().ready("spooling; 0 readings waiting")
    assert received(systemd) == ["READY=1\nSTATUS=spooling; 0 readings waiting"]


def test_ready_without_status_sends_only_ready(systemd):
    Notifier().ready()
    assert received(systemd) == ["READY=1"]


def test_status_is_sent_only_when_it_changes(systemd):
    notifier = Notifier()
    notifier.status("connected")
    notifier.status("connected")
    notifier.status("reconnecting")
    notifier.status("reconnecting")
    notifier.status("connected")
    assert received(systemd) == ["STATUS=connected", "STATUS=reconnecting", "STATUS=connected"]


def test_status_given_with_ready_is_not_repeated(systemd):
    notifier = Notifier()
    notifier.ready("running")
    notifier.status("running")
    assert received(systemd) == ["READY=1\nSTATUS=running"]


def test_reloading_and_stopping(systemd):
    notifier = Notifier()
    notifier.reloading()
    notifier.stopping()
    assert received(systemd) == ["RELOADING=1", "STOPPING=1"]


def test_watchdog_is_not_fed_without_watchdog_usec(systemd):
    notifier = Notifier(clock=FakeClock())
    notifier.watchdog()
    assert notifier.watchdog_interval is None
    assert received(systemd) == []


def test_watchdog_is_fed_at_most_twice_per_interval(systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # WatchdogSec=2
    clock = FakeClock()
    notifier = Notifier(clock=clock)
    assert notifier.watchdog_interval == 2.0
    sent_at = []
    for step in range(41):  # called every 0.1 s for 4 s
        clock.now = 1000.0 + step / 10
        notifier.watchdog()
        if received(systemd) == ["WATCHDOG=1"]:
            sent_at.append(round(clock.now - 1000.0, 1))
    assert sent_at == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_watchdog_is_fed_again_after_a_long_pause(systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    clock = FakeClock()
    notifier = Notifier(clock=clock)
    notifier.watchdog()
    notifier.watchdog()
    clock.now += 60
    notifier.watchdog()
    assert received(systemd) == ["WATCHDOG=1", "WATCHDOG=1"]


def test_watchdog_for_another_pid_is_ignored(systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    notifier = Notifier(clock=FakeClock())
    notifier.watchdog()
    assert notifier.watchdog_interval is None
    assert received(systemd) == []


def test_watchdog_for_our_pid_is_fed(systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    Notifier(clock=FakeClock()).watchdog()
    assert received(systemd) == ["WATCHDOG=1"]


def test_without_notify_socket_nothing_is_sent_and_nothing_fails(tmp_path, monkeypatch):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "unused.sock"))
    listener.setblocking(False)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    notifier = Notifier(clock=FakeClock())
    assert notifier.enabled is False
    notifier.ready("running")
    notifier.status("x")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()
    assert received(listener) == []
    listener.close()


def test_notify_socket_that_is_gone_does_not_fail(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    notifier = Notifier()
    notifier.ready("running")
    notifier.stopping()
