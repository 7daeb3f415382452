"""Signals: SIGTERM and SIGINT ask for a stop, SIGHUP for a reload; the handlers do
nothing a second signal could deadlock on (the storms against the real daemons are in
tests/integration/test_signal_storms.py)."""

from __future__ import annotations

import os
import random
import signal
import threading

import pytest

from pvsim import signals as signals_module
from pvsim.signals import Signals
from tests.support.wait import wait_until

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@pytest.fixture
def signals():
    saved = {s: signal.getsignal(s) for s in HANDLED}
    signals = Signals()
    signals.install()
    yield signals
    signals.uninstall()
    assert {s: signal.getsignal(s) for s in HANDLED} == saved


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_term_and_int_ask_for_a_stop(signals, signum):
    signal.raise_signal(signum)
    assert signals.stop.wait(5)
    assert not signals.reload.is_set()


def test_hup_asks_for_a_reload(signals):
    signal.raise_signal(signal.SIGHUP)
    assert signals.reload.wait(5)
    assert not signals.stop.is_set()


def test_nothing_is_set_before_a_signal(signals):
    assert not signals.stop.is_set()
    assert not signals.reload.is_set()


def test_a_thread_waiting_on_stop_wakes_up(signals):
    woke = threading.Event()
    waiter = threading.Thread(target=lambda: signals.stop.wait(10) and woke.set())
    waiter.start()
    os.kill(os.getpid(), signal.SIGTERM)
    waiter.join(10)
    assert woke.is_set()


def test_the_python_handler_touches_no_lock(signals, monkeypatch):
    """What runs in the main thread when a signal arrives must not set an event (that
    is what deadlocked): the events are set by the ``signals`` thread."""
    setters = []
    original = threading.Event.set

    def recording_set(event):
        setters.append(threading.current_thread().name)
        original(event)

    monkeypatch.setattr(threading.Event, "set", recording_set)
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.raise_signal(signum)
    wait_until(lambda: signals.stop.is_set() and signals.reload.is_set(), timeout=5)
    assert setters and set(setters) == {"signals"}
    assert signal.getsignal(signal.SIGINT) is signals_module._noted


def test_a_storm_inside_the_handlers_ends_in_a_stop(signals):
    """Signals raised from within the handler (the re-entry that deadlocked) and a
    thousand more in random order: the stop is there, the process is fine."""
    rng = random.Random(17)
    nested = []

    def reentering(signum, frame):
        nested.append(signum)
        if len(nested) < 50:
            signal.raise_signal(rng.choice(HANDLED))  # arrives inside this handler
        signals_module._noted(signum, frame)

    for signum in HANDLED:
        signal.signal(signum, reentering)
    signal.raise_signal(signal.SIGHUP)
    assert len(nested) == 50
    for _ in range(1000):
        os.kill(os.getpid(), rng.choice(HANDLED))
    os.kill(os.getpid(), signal.SIGTERM)
    assert signals.stop.wait(5)


def test_install_and_uninstall_restore_the_wakeup_fd():
    before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before)
    s = Signals()
    s.install()
    s.install()  # once is enough
    s.uninstall()
    s.uninstall()
    assert signal.set_wakeup_fd(before) == before
