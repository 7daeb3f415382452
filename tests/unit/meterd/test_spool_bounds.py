"""The spool's bounds: over max_bytes or max_age, the oldest readings are dropped and reported."""

from __future__ import annotations

import logging

from meterd.spool import Spool, encode_record


def _body(seq: int) -> bytes:
    return b'{"seq":%d,"ts":"2026-11-24T10:00:00.000Z"}' % seq


def _open(tmp_path, **kw) -> Spool:
    spool = Spool(tmp_path / "spool", fsync=False, **kw)
    spool.open()
    return spool


def test_over_max_bytes_drops_the_oldest_and_names_their_seqs(tmp_path, caplog):
    record = len(encode_record(0, _body(0)))
    spool = _open(tmp_path, max_bytes=record * 5)
    with caplog.at_level(logging.WARNING):
        for _ in range(8):
            spool.append(_body)
        spool.close()
    assert spool.dropped == 3
    assert spool.backlog == 5
    assert [seq for seq, _ in spool.records_from(0, 100)] == [3, 4, 5, 6, 7]
    text = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "seq 0" in text and "1-2" in text  # first drop at once, the rest at close


def test_dropped_readings_stay_dropped_after_a_restart_and_seq_continues(tmp_path):
    record = len(encode_record(0, _body(0)))
    spool = _open(tmp_path, max_bytes=record * 2)
    for _ in range(6):
        spool.append(_body)
    spool.close()
    again = _open(tmp_path, max_bytes=record * 2)
    assert [seq for seq, _ in again.records_from(0, 100)] == [4, 5]
    assert again.append(_body) == 6


def test_over_max_age_drops_readings_older_than_the_bound(tmp_path):
    now = [1_000_000.0]
    spool = _open(tmp_path, max_age=60, clock=lambda: now[0])
    spool.append(_body, ts=now[0] - 120)  # two minutes old already
    spool.append(_body, ts=now[0] - 30)
    spool.append(_body, ts=now[0])
    assert [seq for seq, _ in spool.records_from(0, 10)] == [1, 2]
    now[0] += 45  # seq 1 is now 75 s old
    spool.append(_body, ts=now[0])
    assert [seq for seq, _ in spool.records_from(0, 10)] == [2, 3]
    assert spool.dropped == 2


def test_confirmed_readings_never_count_against_the_bound(tmp_path):
    record = len(encode_record(0, _body(0)))
    spool = _open(tmp_path, max_bytes=record * 3)
    for _ in range(100):
        seq = spool.append(_body)
        spool.confirm(seq)
    assert spool.dropped == 0
    assert spool.backlog == 0
