"""PvSimDaemon's wiring without a broker: deliveries in, rows and dead letters out, and
acknowledgements only when the record allows them."""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from pvsim import wire
from pvsim.reconnect import ConnectionLost
from tests.unit.pvsimd.harness import AckRecorder, daemon, deliver

T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)


def reading(minute: int, meter: str = "house-a") -> wire.Reading:
    return wire.Reading(meter, T0 + timedelta(minutes=minute), 500.0, minute)


@pytest.fixture
def pvsimd(tmp_path):
    d = daemon(tmp_path, prefetch=400, fsync="off")  # commits on the test's say-so
    d.open()
    d.sessions.session = AckRecorder()
    yield d
    d.files.discard_buffered()
    d.close()


def rows(tmp_path, meter: str = "house-a") -> list[str]:
    path = tmp_path / f"csv/{meter}/2026-11-24.csv"
    return path.read_text().splitlines()[1:] if path.exists() else []


def test_a_commit_writes_the_rows_and_acknowledges_them(pvsimd, tmp_path):
    for tag in (1, 2):
        deliver(pvsimd, tag, reading(tag))
    assert pvsimd.consumer.acks == []
    pvsimd.checkpoint()
    assert pvsimd.consumer.acks == [2]
    assert [line.split(",")[-1] for line in rows(tmp_path)] == ["1", "2"]


def test_an_invalid_message_is_dead_lettered_and_acknowledged_once_confirmed(pvsimd, tmp_path):
    deliver(pvsimd, 1, reading(1))
    deliver(pvsimd, 2, b'{"v": 1}', routing_key="reading.house-a")
    deliver(pvsimd, 3, reading(3))
    pvsimd.checkpoint()
    consumer = pvsimd.consumer
    assert consumer.dead_letters == [(b'{"v": 1}', "reading.house-a", "missing field meter_id")]
    assert consumer.acks == [1]  # not past the unconfirmed dead letter
    pvsimd._on_dead_letter_confirmed(1, multiple=False, ok=True)
    assert consumer.acks == [1, 3]
    assert len(rows(tmp_path)) == 2
    assert "1 dead-lettered" in pvsimd.status()


def test_a_refused_dead_letter_fails_the_session(pvsimd):
    deliver(pvsimd, 1, b"not json", routing_key="reading.house-a")
    pvsimd._on_dead_letter_confirmed(1, multiple=False, ok=False)
    assert pvsimd.consumer.failed == [
        "the broker refused a dead letter; the message is redelivered"
    ]


def test_a_routing_key_of_another_meter_or_a_forged_sender_is_dead_lettered(tmp_path):
    d = daemon(tmp_path, prefetch=400, fsync="off", security="sender_map = guest:house-a")
    d.open()
    d.sessions.session = consumer = AckRecorder()
    deliver(d, 1, reading(1), routing_key="reading.house-b")
    deliver(d, 2, reading(2), user_id="house-b")
    deliver(d, 3, reading(3), user_id="guest")
    reasons = [reason for _b, _k, reason in consumer.dead_letters]
    assert reasons == [
        "routing key does not match meter_id 'house-a'",
        "forged: broker user 'house-b' may not send readings of meter 'house-a'",
    ]
    d.checkpoint()
    assert consumer.acks == []  # behind the two unconfirmed dead letters
    d._on_dead_letter_confirmed(2, multiple=True, ok=True)
    assert consumer.acks == [3]
    d.close()


def test_a_repeat_is_acknowledged_without_a_second_row(pvsimd, tmp_path):
    deliver(pvsimd, 1, reading(1))
    deliver(pvsimd, 2, reading(1))  # redelivered, or republished by meterd
    pvsimd.checkpoint()
    assert pvsimd.consumer.acks == [2] and len(rows(tmp_path)) == 1
    assert "1 repeats dropped" in pvsimd.status()


def test_while_writing_fails_deliveries_are_held_and_retried_every_second(
    pvsimd, tmp_path, monkeypatch
):
    real_open = os.open

    def full(path, *args, **kwargs):  # noqa: ANN001, ANN202
        if str(path).endswith(".csv"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, *args, **kwargs)

    with freeze_time("2026-11-24T10:30:00Z") as clock:
        monkeypatch.setattr(os, "open", full)
        deliver(pvsimd, 1, reading(1))
        deliver(pvsimd, 2, reading(2))
        assert len(pvsimd.record.held) == 2
        assert pvsimd.status().startswith("CSV WRITES FAILING since")
        assert "2 readings waiting" in pvsimd.status()
        monkeypatch.setattr(os, "open", real_open)
        pvsimd._tick()  # within the second: no retry yet
        assert len(pvsimd.record.held) == 2
        clock.tick(1.5)
        pvsimd._tick()  # the retry: the held ones in order, then the commit
        assert not pvsimd.record.held
        pvsimd.checkpoint()
    assert pvsimd.consumer.acks == [2]
    assert [line.split(",")[-1] for line in rows(tmp_path)] == ["1", "2"]
    assert not pvsimd.status().startswith("CSV WRITES FAILING")


def test_a_lost_session_forgets_what_was_not_acknowledged(pvsimd, tmp_path):
    deliver(pvsimd, 1, reading(1))
    pvsimd.checkpoint()
    deliver(pvsimd, 2, reading(2))  # buffered, not acknowledged
    pvsimd.on_session_lost(ConnectionLost("gone"))
    pvsimd.sessions.session = consumer = AckRecorder()
    deliver(pvsimd, 1, reading(2))  # the broker redelivers it, with a new tag
    pvsimd.checkpoint()
    assert consumer.acks == [1]
    assert [line.split(",")[-1] for line in rows(tmp_path)] == ["1", "2"]


def test_drain_commits_acknowledges_and_waits_for_dead_letter_confirms(pvsimd):
    consumer = pvsimd.consumer
    consumer.cancel = lambda: None
    resumed = []

    def resume(doing: str) -> bool:
        resumed.append(doing)
        if len(resumed) == 2:  # the second run: the broker confirms the dead letter
            pvsimd._on_dead_letter_confirmed(1, multiple=False, ok=True)
        return True

    pvsimd.sessions.resume = resume
    consumer.connection = type("Open", (), {"is_open": True})()
    deliver(pvsimd, 1, reading(1))
    deliver(pvsimd, 2, b"{}", routing_key="reading.house-a")
    pvsimd.drain()
    assert resumed == ["stopping", "stopping"]
    assert consumer.acks == [1, 2] and consumer.paused == 1
