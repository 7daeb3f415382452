"""The lifecycle's steps and their failure paths, and the reload, without a broker:
what a daemon does when open() fails, when a stop comes before the broker, and what a
SIGHUP applies."""

from __future__ import annotations

import argparse
import errno
import logging

import pytest

from meterd.service import MeterDaemon
from meterd.settings import SCHEMA as METERD
from pvsim import config as c
from pvsim.lifecycle import StartupError
from pvsim.notify import Notifier
from pvsim.signals import Signals
from pvsimd.day_file import DayFile
from tests.unit.pvsimd import harness


class RecordingNotifier(Notifier):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def _send(self, message: str) -> None:
        self.sent.append(message)


def meterd(tmp_path, text: str = "") -> MeterDaemon:
    ini = tmp_path / "meterd.ini"
    ini.write_text(
        f"[meter]\nid = house-a\nstate_directory = {tmp_path / 'state'}\n"
        "[metrics]\nlisten =\n" + text
    )
    args = argparse.Namespace(replay=None, speed=None)
    return MeterDaemon(c.load(ini, METERD), Signals(), RecordingNotifier(), args)


def test_a_stop_before_the_broker_answers_ends_without_connecting(tmp_path):
    d = meterd(tmp_path)
    d.signals.stop.set()  # SIGTERM right after start, the broker not reached yet
    d.serve()
    sent = d.notifier.sent
    assert sent[0].startswith("READY=1")  # meterd is ready once it spools
    assert sent.count("STOPPING=1") == 1
    assert d.spool._fd is None  # closed
    again = meterd(tmp_path)
    again.lock.acquire()  # and the lock was given back
    again.lock.release()


def test_open_failing_closes_what_was_opened_and_keeps_its_error(tmp_path):
    (tmp_path / "state").write_text("a file where the state directory should be")
    d = meterd(tmp_path)
    with pytest.raises(StartupError) as err:
        d.serve()
    assert err.value.exit_code == 73
    assert not any(m.startswith("READY=1") for m in d.notifier.sent)


def test_pvsimd_whose_journal_cannot_be_written_exits_73_not_70(tmp_path, monkeypatch, caplog):
    """A journal row left from the last run, and a disk that refuses its day file: open()
    fails with StartupError (exit 73); close() must not replace it by its own OSError."""
    d = harness.daemon(tmp_path, prefetch=8, fsync="batch")
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv/.journal").write_text("2026-11-24T11:00:00+01:00,house-a,1.0,2.0,3.0,7\n")

    def full(self: DayFile) -> tuple[int, list[str]]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(DayFile, "write", full)
    with caplog.at_level(logging.ERROR), pytest.raises(StartupError) as err:
        d.serve()
    assert err.value.exit_code == 73
    assert "No space left on device" in str(err.value)
    assert "could not write the last rows" in caplog.text  # close() said so, once
    assert (tmp_path / "csv/.journal").read_text().count("\n") == 1  # kept for the next start


def test_reload_applies_the_level_and_names_what_needs_a_restart(tmp_path, caplog):
    d = meterd(tmp_path)
    ini = tmp_path / "meterd.ini"
    ini.write_text(ini.read_text() + "[logging]\nlevel = debug\n[spool]\nmax_age = 1d\n")
    with caplog.at_level(logging.INFO):
        d.reload()
    assert d.config.logging.level == "debug"  # applied
    assert d.config.spool.max_age == 7 * 86400.0  # not applied: a restart
    assert "[logging] level changed, applied" in caplog.text
    assert "[spool] max_age changed, but takes effect only after a restart" in caplog.text
    assert d.notifier.sent[0] == "RELOADING=1" and d.notifier.sent[-1].startswith("READY=1")


def test_a_bad_reload_keeps_the_running_configuration(tmp_path, caplog):
    d = meterd(tmp_path)
    ini = tmp_path / "meterd.ini"
    ini.write_text(ini.read_text() + "[logging]\nlevel = loud\n")
    with caplog.at_level(logging.ERROR):
        d.reload()
    assert d.config.logging.level == "info"
    assert "reload failed, keeping the running configuration" in caplog.text
    assert "[logging] level: must be one of" in caplog.text


def test_a_reload_asked_for_while_stopping_is_not_done(tmp_path):
    d = meterd(tmp_path)
    d.signals.reload.set()
    d.signals.stop.set()
    d.heartbeat()
    assert "RELOADING=1" not in d.notifier.sent and not d.signals.reload.is_set()
