"""pvsimd refuses readings from the future (a meter's wrong clock) — dead letters with the
reason ``future`` — but takes old ones; its own clock before the build date is wrong
itself, and then nothing is refused for that."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from pvsim import build_info, wire
from tests.unit.pvsimd.harness import AckRecorder, daemon, deliver

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


@pytest.fixture
def pvsimd(tmp_path):
    with freeze_time(NOW) as clock:
        d = daemon(tmp_path, prefetch=400, fsync="off")
        d.open()
        d.sessions.session = AckRecorder()
        d.clock = clock
        yield d
        d.files.discard_buffered()
        d.close()


def at(d, tag: int, ts: datetime) -> None:
    deliver(d, tag, wire.Reading("house-a", ts, 100.0, tag))


def test_a_reading_too_far_ahead_is_dead_lettered_as_future(pvsimd):
    at(pvsimd, 1, NOW + timedelta(minutes=5))  # within the default tolerance of 5 min
    at(pvsimd, 2, NOW + timedelta(minutes=5, seconds=1))
    at(pvsimd, 3, NOW + timedelta(days=1))
    at(pvsimd, 4, NOW - timedelta(days=400))  # old readings are welcome
    reasons = [reason for _body, _key, reason in pvsimd.consumer.dead_letters]
    assert reasons == [
        "future: ts 2026-11-30T12:05:01.000Z is 301 s ahead of this machine's clock "
        "(future_tolerance 300 s)",
        "future: ts 2026-12-01T12:00:00.000Z is 86400 s ahead of this machine's clock "
        "(future_tolerance 300 s)",
    ]
    assert pvsimd.stats.dead_letters == {"invalid": 0, "forged": 0, "future": 2}
    assert pvsimd.stats.rows == 2


def test_the_limit_moves_with_the_clock(pvsimd):
    ahead = NOW + timedelta(minutes=10)
    at(pvsimd, 1, ahead)
    pvsimd.clock.move_to(NOW + timedelta(minutes=6))
    at(pvsimd, 2, ahead)  # the limit is looked up again before refusing
    assert pvsimd.stats.dead_letters["future"] == 1 and pvsimd.stats.rows == 1


def test_the_tolerance_is_configurable(tmp_path):
    with freeze_time(NOW):
        d = daemon(tmp_path, 400, "off", "verify_sender = no\nfuture_tolerance = 2h")
        d.open()
        d.sessions.session = AckRecorder()
        at(d, 1, NOW + timedelta(minutes=119))
        at(d, 2, NOW + timedelta(minutes=121))
        assert d.stats.dead_letters["future"] == 1
        d.files.discard_buffered()
        d.close()


def test_a_clock_before_the_build_date_refuses_nothing_for_being_ahead(tmp_path, caplog):
    build = datetime.fromtimestamp(build_info.build_epoch(), UTC)
    with freeze_time(datetime(1970, 1, 1, 0, 0, 5, tzinfo=UTC)) as clock:
        with caplog.at_level(logging.INFO, logger="pvsimd"):
            d = daemon(tmp_path, 400, "off")
            d.open()
            d.sessions.session = AckRecorder()
            at(d, 1, build + timedelta(days=2))  # 56 years ahead of this clock: still taken
            assert d.consumer.dead_letters == [] and d.stats.rows == 1
            assert "no check for readings in the future" in d.status()
            clock.move_to(build + timedelta(days=1))  # NTP set it
            d._tick()
            at(d, 2, build + timedelta(days=2, minutes=1))
            assert d.stats.dead_letters["future"] == 1
            assert "no check" not in d.status()
        d.files.discard_buffered()
        d.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "before the build date" in w]) == 1
    assert "past the build date" in caplog.text
    assert "refused message with routing key 'reading.house-a'" in caplog.text
