"""MeterDaemon's wiring without a broker: the tick publishes, drains and stops; STATUS
shows what is counted."""

from __future__ import annotations

import argparse
import json

import pytest

from meterd.clock_watch import ClockState
from meterd.service import MeterDaemon
from meterd.settings import SCHEMA
from pvsim import config as c
from pvsim.lifecycle import StartupError
from pvsim.notify import Notifier
from pvsim.signals import Signals


class FakePublisher:
    is_ready = True
    display_url = "amqp://guest:***@localhost:5672/%2F"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def publish_pending(self) -> None:
        self.calls.append("publish")

    def pause(self) -> None:
        self.calls.append("pause")


def config(tmp_path) -> c.Config:
    ini = tmp_path / "meterd.ini"
    ini.write_text(f"[meter]\nid = house-a\nstate_directory = {tmp_path / 'state'}\n")
    return c.load(ini, SCHEMA)


def meterd(tmp_path, replay=None, speed=None) -> MeterDaemon:  # noqa: ANN001
    args = argparse.Namespace(replay=replay, speed=speed)
    return MeterDaemon(config(tmp_path), Signals(), Notifier(), args)


@pytest.fixture
def daemon(tmp_path):
    d = meterd(tmp_path)
    d.spool.open()
    d.sessions.session = FakePublisher()
    yield d
    d.close()


def spool(d: MeterDaemon, n: int) -> None:
    for _ in range(n):
        d.spool.append(lambda seq: json.dumps({"seq": seq}).encode())


def test_speed_without_replay_is_refused(tmp_path):
    with pytest.raises(StartupError, match="--speed needs --replay") as err:
        meterd(tmp_path, speed=60.0)
    assert err.value.exit_code == 64


def test_a_new_session_and_every_tick_publish_what_is_pending(daemon):
    daemon.on_session_open(daemon.publisher)
    daemon._tick()
    assert daemon.publisher.calls == ["publish", "publish"]


def test_a_stop_pauses_the_session_for_the_drain(daemon):
    daemon.signals.stop.set()
    daemon._tick()
    assert daemon.publisher.calls == ["pause"]


def test_the_drain_publishes_the_backlog_and_pauses_once_it_is_confirmed(daemon):
    spool(daemon, 3)
    resumed = []
    daemon.sessions.resume = lambda doing: resumed.append(doing) or True
    daemon.drain()
    assert resumed == ["draining"] and daemon.publisher.calls == ["publish"]
    daemon._tick()  # backlog still there, within drain_timeout: go on (confirms publish more)
    assert daemon.publisher.calls == ["publish"]
    daemon.spool.confirm(2)
    daemon._on_confirmed(3)
    daemon._tick()
    assert daemon.publisher.calls[-1] == "pause"
    assert "3 published since start" in daemon.status()
    assert daemon.sessions.work_done == 3


def test_nothing_to_drain_without_a_backlog(daemon):
    daemon.sessions.resume = lambda doing: pytest.fail("nothing to publish")
    daemon.drain()


def test_status_shows_missed_samples_skipped_records_and_drops(daemon):
    assert "missed" not in daemon.status() and "SPOOL FULL" not in daemon.status()
    daemon.sampler.missed = 4
    daemon.spool.skipped_records = 1
    daemon.spool.dropped = 7
    status = daemon.status()
    assert status.startswith("SPOOL FULL: 7 readings dropped; ")
    assert status.endswith("; 4 samples missed, 1 corrupt spool records skipped")


def test_status_shows_skipped_samples_and_a_clock_it_waits_for(daemon):
    daemon.sampler.skipped = 2
    assert daemon.status().endswith("; 2 samples skipped (clock stepped back)")
    daemon.sampler.clock = lambda: 5_000_000  # 1970
    daemon.sampler.watch.state = ClockState.WAITING
    status = daemon.status()
    assert status.startswith(
        "waiting for a trustworthy clock: it says 1970-01-01T00:00:05.000Z, not before "
    )
    assert "(the build date); " in status
