"""meterd --replay: parsing the period, and feeding a past period's ticks to the sampler."""

from __future__ import annotations

import argparse
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from meterd import replay
from meterd.load_model import Uniform
from meterd.sampler import Sampler
from meterd.schedule import Schedule
from meterd.spool import Spool
from pvsim import wire


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meterd")
    replay.add_arguments(parser)
    return parser


def test_dates_and_times_without_offset_are_utc_and_offsets_are_honoured():
    args = _parser().parse_args(["--replay", "2026-06-21", "2026-06-21T12:30:00+02:00"])
    assert args.replay == (
        datetime(2026, 6, 21, tzinfo=UTC),
        datetime(2026, 6, 21, 12, 30, tzinfo=timezone(timedelta(hours=2))),
    )
    assert args.speed is None
    args = _parser().parse_args(
        ["--replay", "2026-06-21T06:00Z", "2026-06-21 07:00", "--speed", "60"]
    )
    assert args.replay[0] == datetime(2026, 6, 21, 6, tzinfo=UTC)
    assert args.replay[1] == datetime(2026, 6, 21, 7, tzinfo=UTC)
    assert args.speed == 60.0


@pytest.mark.parametrize(
    "argv",
    [
        ["--replay", "2026-06-22", "2026-06-21"],
        ["--replay", "2026-06-21", "2026-06-21"],
        ["--replay", "yesterday", "2026-06-21"],
        ["--replay", "2026-06-21"],
        ["--replay", "2026-06-21", "2026-06-22", "--speed", "0"],
        ["--replay", "2026-06-21", "2026-06-22", "--speed", "-2"],
        ["--replay", "2026-06-21", "2026-06-22", "--speed", "inf"],
        ["--replay", "2026-06-21", "2026-06-22", "--speed", "fast"],
    ],
)
def test_bad_periods_and_speeds_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2
    assert "meterd: error:" in capsys.readouterr().err


def test_max_backlog_stays_within_the_spool_bound():
    assert replay.max_backlog(1000, 32 * 1024**2) == 2000
    assert replay.max_backlog(1000, 64 * 1024) == 256
    assert replay.max_backlog(1000, 4096) == 16
    assert replay.max_backlog(1, None) == 2
    assert replay.max_backlog(1000, 100) == 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class AdvancingStop(threading.Event):
    """A stop event whose wait() advances a fake clock instead of sleeping."""

    def __init__(self, clock: FakeClock, on_wait=None) -> None:  # noqa: ANN001
        super().__init__()
        self.clock = clock
        self.on_wait = on_wait
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self.clock.now += timeout or 0.0
        if self.on_wait is not None:
            self.on_wait()
        return self.is_set()


def _sampler(tmp_path, interval: float = 10.0) -> Sampler:
    spool = Spool(tmp_path / "spool", fsync=False, max_age=60.0)  # max_age: see the test
    spool.open()
    return Sampler("house-a", Schedule.every(interval), Uniform("house-a", 1), spool)


def _spooled(sampler: Sampler) -> list[wire.Reading]:
    return [wire.decode(body) for _seq, body in sampler.spool.records_from(0, 10**9)]


def test_every_tick_in_start_to_end_is_recorded_with_its_own_timestamp(tmp_path):
    sampler = _sampler(tmp_path)
    sampler.spool.max_age = None  # as the daemon does in replay mode
    start = datetime(2026, 6, 21, 0, 0, 5, tzinfo=UTC)  # between two ticks
    end = datetime(2026, 6, 21, 1, tzinfo=UTC)
    r = replay.Replay(sampler, start, end, backlog_limit=10_000)
    assert r.total == 359  # 00:00:10 .. 00:59:50
    r.loop(threading.Event())
    assert r.finished.is_set() and r.recorded == 359
    readings = _spooled(sampler)
    assert [x.seq for x in readings] == list(range(359))
    assert readings[0].ts == datetime(2026, 6, 21, 0, 0, 10, tzinfo=UTC)
    assert readings[-1].ts == datetime(2026, 6, 21, 0, 59, 50, tzinfo=UTC)
    model = Uniform("house-a", 1)
    assert all(x.power_w == model.power_w(x.ts) for x in readings)


def test_it_waits_for_confirmations_rather_than_run_ahead(tmp_path):
    sampler = _sampler(tmp_path)
    sampler.spool.max_age = None
    start = datetime(2026, 6, 21, tzinfo=UTC)
    r = replay.Replay(sampler, start, start + timedelta(minutes=10), backlog_limit=5)
    stop = threading.Event()
    confirmed = []

    def confirm_all() -> None:  # the broker confirms whatever is waiting
        backlog_max = sampler.spool.backlog
        confirmed.append(backlog_max)
        sampler.spool.confirm(sampler.spool.next_seq - 1)
        r.on_confirmed()

    r._room = AdvancingStop(FakeClock(), on_wait=confirm_all)
    r.loop(stop)
    assert r.finished.is_set()
    assert sampler.spool.next_seq == 60
    assert confirmed and max(confirmed) <= 5


def test_speed_paces_the_ticks_against_the_clock(tmp_path):
    sampler = _sampler(tmp_path)
    sampler.spool.max_age = None
    clock = FakeClock()
    start = datetime(2026, 6, 21, tzinfo=UTC)
    r = replay.Replay(sampler, start, start + timedelta(minutes=1), speed=5.0, clock=clock)
    stop = AdvancingStop(clock)
    r.loop(stop)
    assert r.recorded == 6
    assert clock.now == pytest.approx(50 / 5.0)  # the last tick is 50 s after the first
    assert all(w == pytest.approx(2.0) for w in stop.waits)


def test_a_stop_ends_the_replay_unfinished(tmp_path):
    sampler = _sampler(tmp_path)
    sampler.spool.max_age = None
    clock = FakeClock()
    start = datetime(2026, 6, 21, tzinfo=UTC)
    r = replay.Replay(sampler, start, start + timedelta(hours=1), speed=1.0, clock=clock)
    stop = AdvancingStop(clock)
    stop.on_wait = lambda: stop.set() if clock.now > 25 else None
    r.loop(stop)
    assert not r.finished.is_set()
    assert r.recorded == 3  # 0, 10 and 20 s


def test_a_spool_write_failure_is_retried_not_skipped(tmp_path, monkeypatch):
    sampler = _sampler(tmp_path)
    sampler.spool.max_age = None
    real_append = sampler.spool.append
    failures = iter([True, True, False])

    def flaky(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if next(failures, False):
            raise OSError(28, "No space left on device")
        return real_append(*args, **kwargs)

    monkeypatch.setattr(sampler.spool, "append", flaky)
    clock = FakeClock()
    start = datetime(2026, 6, 21, tzinfo=UTC)
    r = replay.Replay(sampler, start, start + timedelta(seconds=30), clock=clock)
    stop = AdvancingStop(clock)
    r.loop(stop)
    assert r.finished.is_set()
    assert [x.seq for x in _spooled(sampler)] == [0, 1, 2]
    assert stop.waits == [1.0, 1.0]


def test_with_max_age_the_spool_would_drop_old_readings(tmp_path):
    """Why replay mode switches max_age off: the readings are months old."""
    sampler = _sampler(tmp_path)  # max_age 60 s
    start = datetime(2026, 6, 21, tzinfo=UTC)
    r = replay.Replay(sampler, start, start + timedelta(minutes=1), backlog_limit=100)
    r.loop(threading.Event())
    assert sampler.spool.dropped == 5  # all but the newest one
