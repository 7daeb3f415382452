"""Signals: SIGTERM and SIGINT ask for a stop, SIGHUP for a reload."""

from __future__ import annotations

import signal

import pytest

from pvsim.signals import Signals


@pytest.fixture
def signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    signals = Signals()
    signals.install()
    yield signals
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_term_and_int_ask_for_a_stop(signals, signum):
    signal.raise_signal(signum)
    assert signals.stop.is_set()
    assert not signals.reload.is_set()


def test_hup_asks_for_a_reload(signals):
    signal.raise_signal(signal.SIGHUP)
    assert signals.reload.is_set()
    assert not signals.stop.is_set()


def test_nothing_is_set_before_a_signal(signals):
    assert not signals.stop.is_set()
    assert not signals.reload.is_set()
