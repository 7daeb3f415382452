"""The write-ahead spool: seq assignment, confirmation, segments and crash recovery."""

from __future__ import annotations

import logging
import os
import tracemalloc
from pathlib import Path

import pytest

from meterd.spool import Spool, decode_record, encode_record


def oldest_pending_body(spool: Spool) -> bytes | None:
    records = spool.records_from(0, 1)
    return records[0][1] if records else None


def body_for(seq: int) -> bytes:
    return b'{"seq": %d, "power_w": 1234.5}' % seq


def open_spool(directory: Path, **kwargs) -> Spool:
    spool = Spool(directory, fsync=False, **kwargs)
    spool.open()
    return spool


def append(spool: Spool, n: int) -> list[int]:
    return [spool.append(body_for) for _ in range(n)]


def pending(spool: Spool) -> list[int]:
    return [seq for seq, _ in spool.records_from(0, 1_000_000)]


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("seg-*.log"))


@pytest.fixture
def spool_dir(tmp_path):
    return tmp_path / "spool"


def test_append_assigns_0_1_2(spool_dir):
    spool = open_spool(spool_dir)
    assert append(spool, 3) == [0, 1, 2]
    assert spool.next_seq == 3
    assert spool.backlog == 3


def test_body_is_built_with_its_seq_and_kept_verbatim(spool_dir):
    spool = open_spool(spool_dir)
    append(spool, 2)
    assert spool.records_from(0, 10) == [(0, body_for(0)), (1, body_for(1))]
    assert oldest_pending_body(spool) == body_for(0)


def test_reopen_continues_the_sequence(spool_dir):
    spool = open_spool(spool_dir)
    append(spool, 3)
    spool.close()
    spool = open_spool(spool_dir)
    assert spool.next_seq == 3
    assert append(spool, 2) == [3, 4]


def test_records_from_returns_unconfirmed_records_oldest_first(spool_dir):
    spool = open_spool(spool_dir)
    append(spool, 5)
    assert [s for s, _ in spool.records_from(2, 2)] == [2, 3]
    assert [s for s, _ in spool.records_from(3, 100)] == [3, 4]
    assert spool.records_from(5, 100) == []


def test_confirmed_records_leave_the_backlog(spool_dir):
    spool = open_spool(spool_dir)
    append(spool, 5)
    spool.confirm(2)
    assert spool.backlog == 2
    assert spool.confirmed == 2
    assert pending(spool) == [3, 4]
    assert oldest_pending_body(spool) == body_for(3)
    spool.confirm(4)
    assert spool.backlog == 0
    assert oldest_pending_body(spool) is None


def test_confirm_of_an_older_seq_changes_nothing(spool_dir):
    spool = open_spool(spool_dir)
    append(spool, 5)
    spool.confirm(3)
    spool.confirm(1)
    assert spool.confirmed == 3
    assert pending(spool) == [4]


def test_after_reopen_only_unconfirmed_records_are_pending(spool_dir):
    spool = open_spool(spool_dir)
    append(spool, 5)
    spool.confirm(2)
    spool.close()
    spool = open_spool(spool_dir)
    assert spool.confirmed == 2
    assert pending(spool) == [3, 4]
    assert spool.records_from(3, 10) == [(3, body_for(3)), (4, body_for(4))]


def test_all_confirmed_then_reopen_has_empty_backlog(spool_dir):
    spool = open_spool(spool_dir)
    append(spool, 3)
    spool.confirm(2)
    spool.close()
    spool = open_spool(spool_dir)
    assert spool.backlog == 0
    assert append(spool, 1) == [3]


def test_segments_rotate_after_segment_records(spool_dir):
    spool = open_spool(spool_dir, segment_records=3)
    append(spool, 7)
    assert segments(spool_dir) == [
        "seg-00000000000000000000.log",
        "seg-00000000000000000003.log",
        "seg-00000000000000000006.log",
    ]
    assert pending(spool) == list(range(7))


def test_fully_confirmed_old_segments_are_deleted(spool_dir):
    spool = open_spool(spool_dir, segment_records=3)
    append(spool, 10)
    spool.confirm(4)  # segment 0 (0-2) fully confirmed, segment 3 (3-5) not
    assert segments(spool_dir) == [
        "seg-00000000000000000003.log",
        "seg-00000000000000000006.log",
        "seg-00000000000000000009.log",
    ]
    spool.confirm(9)  # everything: only the newest segment stays
    assert segments(spool_dir) == ["seg-00000000000000000009.log"]
    assert (spool_dir / "confirmed").read_text().strip() == "9"


def test_reopen_after_rotation_continues_in_a_new_segment(spool_dir):
    spool = open_spool(spool_dir, segment_records=3)
    append(spool, 6)  # two full segments
    spool.close()
    spool = open_spool(spool_dir, segment_records=3)
    assert append(spool, 1) == [6]
    assert "seg-00000000000000000006.log" in segments(spool_dir)
    assert pending(spool) == list(range(7))


def test_segment_deleted_at_confirm_stays_deleted_after_reopen(spool_dir):
    spool = open_spool(spool_dir, segment_records=2)
    append(spool, 6)
    spool.confirm(3)
    spool.close()
    spool = open_spool(spool_dir, segment_records=2)
    assert pending(spool) == [4, 5]
    assert segments(spool_dir) == [
        "seg-00000000000000000004.log",
        "seg-00000000000000000006.log",  # segment 4 is full: the next record starts a new one
    ]


def test_torn_last_record_is_cut_off_with_a_warning(spool_dir, caplog):
    spool = open_spool(spool_dir)
    append(spool, 3)
    spool.close()
    (segment,) = spool_dir.glob("seg-*.log")
    data = segment.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    segment.write_bytes(data[: last_start + 10])  # a power cut in the middle of record 2

    with caplog.at_level(logging.WARNING, logger="meterd.spool"):
        spool = open_spool(spool_dir)
    assert "torn record" in caplog.text
    assert segment.read_bytes() == data[:last_start]
    assert pending(spool) == [0, 1]
    assert spool.next_seq == 2  # continues from the last intact record
    assert append(spool, 1) == [2]
    spool.close()
    assert pending(open_spool(spool_dir)) == [0, 1, 2]


def test_corrupt_record_in_the_middle_is_skipped_with_a_warning(spool_dir, caplog):
    spool = open_spool(spool_dir)
    append(spool, 5)
    spool.close()
    (segment,) = spool_dir.glob("seg-*.log")
    data = bytearray(segment.read_bytes())
    lines = data.split(b"\n")
    offset = sum(len(line) + 1 for line in lines[:2]) + len(lines[2]) - 3  # in record 2's body
    data[offset] ^= 0x01
    segment.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="meterd.spool"):
        spool = open_spool(spool_dir)
    assert "corrupt record" in caplog.text
    assert spool.skipped_records == 1
    assert pending(spool) == [0, 1, 3, 4]
    assert spool.next_seq == 5
    assert append(spool, 1) == [5]


def test_records_after_a_skipped_one_are_all_handed_out_in_batches(spool_dir):
    spool = open_spool(spool_dir)
    append(spool, 8)
    spool.close()
    (segment,) = spool_dir.glob("seg-*.log")
    lines = segment.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b"1234.5", b"1234.6")  # record 3 no longer matches its CRC
    segment.write_bytes(b"\n".join(lines))
    spool = open_spool(spool_dir)

    # as the publisher does: ask for the next seq after the last one handed out
    handed_out = []
    next_seq = spool.confirmed + 1
    while batch := spool.records_from(next_seq, 2):
        handed_out += [seq for seq, _ in batch]
        next_seq = batch[-1][0] + 1
    assert handed_out == [0, 1, 2, 4, 5, 6, 7]
    assert [seq for seq, _ in spool.records_from(5, 1)] == [5]
    assert [seq for seq, _ in spool.records_from(3, 1)] == [4]


def test_garbage_line_is_skipped_not_a_crash(spool_dir, caplog):
    spool = open_spool(spool_dir)
    append(spool, 2)
    spool.close()
    (segment,) = spool_dir.glob("seg-*.log")
    segment.write_bytes(segment.read_bytes() + b"\x00\xff garbage\n")
    with caplog.at_level(logging.WARNING, logger="meterd.spool"):
        spool = open_spool(spool_dir)
    assert "corrupt" in caplog.text
    assert pending(spool) == [0, 1]
    assert append(spool, 1) == [2]


def test_lost_confirmed_file_means_records_are_pending_again(spool_dir):
    spool = open_spool(spool_dir)
    append(spool, 5)
    spool.confirm(3)
    spool.close()
    (spool_dir / "confirmed").unlink()
    spool = open_spool(spool_dir)
    assert pending(spool) == [0, 1, 2, 3, 4]
    assert spool.next_seq == 5


def test_unreadable_confirmed_file_means_records_are_pending_again(spool_dir, caplog):
    spool = open_spool(spool_dir)
    append(spool, 3)
    spool.confirm(1)
    spool.close()
    (spool_dir / "confirmed").write_text("rubbish\n")
    with caplog.at_level(logging.WARNING, logger="meterd.spool"):
        spool = open_spool(spool_dir)
    assert "confirmed" in caplog.text
    assert pending(spool) == [0, 1, 2]


def test_empty_newest_segment_gives_its_name_as_next_seq(spool_dir):
    spool_dir.mkdir()
    (spool_dir / "seg-00000000000000000042.log").write_bytes(b"")
    spool = open_spool(spool_dir)
    assert spool.next_seq == 42
    assert append(spool, 1) == [42]
    assert pending(spool) == [42]


def test_empty_newest_segment_after_older_records(spool_dir):
    spool = open_spool(spool_dir, segment_records=3)
    append(spool, 3)
    spool.close()
    (spool_dir / "seg-00000000000000000042.log").write_bytes(b"")
    spool = open_spool(spool_dir, segment_records=3)
    assert spool.next_seq == 42
    assert pending(spool) == [0, 1, 2]


def test_failed_write_leaves_no_partial_record(spool_dir, monkeypatch):
    spool = open_spool(spool_dir)
    append(spool, 2)
    import meterd.spool as spool_module

    real_write = spool_module.os.write

    def half_then_fail(fd, data):
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_module.os, "write", half_then_fail)
    with pytest.raises(OSError):
        spool.append(body_for)
    monkeypatch.undo()
    assert spool.next_seq == 2
    assert append(spool, 1) == [2]
    spool.close()
    spool = open_spool(spool_dir)
    assert spool.skipped_records == 0
    assert pending(spool) == [0, 1, 2]


def test_watermark_is_saved_on_close(spool_dir):
    spool = open_spool(spool_dir)
    append(spool, 3)
    spool.confirm(0)
    spool.confirm(1)
    spool.close()
    assert (spool_dir / "confirmed").read_text().strip() == "1"


def test_record_round_trip():
    line = encode_record(7, b'{"a": 1} with spaces')
    assert line.endswith(b"\n")
    assert decode_record(line[:-1]) == (7, b'{"a": 1} with spaces')


@pytest.mark.parametrize("line", [b"", b"7", b"7 0000", b"x 00000000 body", b"-1 00000000 "])
def test_malformed_record_lines_decode_to_none(line):
    assert decode_record(line) is None


def test_record_with_wrong_crc_decodes_to_none():
    line = encode_record(7, b"body")[:-1]
    assert decode_record(line.replace(b"body", b"bodz")) is None


def test_flipped_bit_in_a_seq_loses_only_that_record(spool_dir):
    spool = open_spool(spool_dir)
    append(spool, 200)
    spool.close()
    (segment,) = spool_dir.glob("seg-*.log")
    lines = segment.read_bytes().split(b"\n")
    lines[10] = b"9" + lines[10][1:]  # "10 ..." -> "90 ...": one bit (0x31 ^ 0x39)
    segment.write_bytes(b"\n".join(lines))
    spool = open_spool(spool_dir)
    assert spool.backlog >= 199


def flip_byte_in_body(segment: Path, record: int) -> None:
    """Flip a bit in the body of the record-th record of a segment file."""
    data = bytearray(segment.read_bytes())
    lines = data.split(b"\n")
    data[sum(len(line) + 1 for line in lines[:record]) + len(lines[record]) - 3] ^= 0x01
    segment.write_bytes(bytes(data))


def test_pending_bodies_are_not_kept_in_memory(spool_dir):
    spool = open_spool(spool_dir)
    pad = b"x" * 60

    def body(seq: int) -> bytes:  # about 100 bytes
        return b'{"seq": %d, "power_w": 1234.5, "pad": "%s"}' % (seq, pad)

    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100_000):
            spool.append(body)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        if started:
            tracemalloc.stop()
    assert spool.backlog == 100_000
    assert held < 12_000_000  # bodies in memory took over 30 MB
    assert spool.records_from(99_998, 10) == [(99_998, body(99_998)), (99_999, body(99_999))]
    spool.close()


def test_records_from_after_reopen_returns_the_bodies_appended(spool_dir):
    spool = open_spool(spool_dir, segment_records=4)
    append(spool, 10)
    spool.confirm(2)
    before = spool.records_from(0, 100)
    spool.close()
    spool = open_spool(spool_dir, segment_records=4)
    assert spool.records_from(0, 100) == before == [(s, body_for(s)) for s in range(3, 10)]
    # a window at a time, across segment boundaries, as the publisher asks
    assert spool.records_from(4, 3) == [(s, body_for(s)) for s in (4, 5, 6)]
    assert oldest_pending_body(spool) == body_for(3)
    assert append(spool, 2) == [10, 11]
    assert spool.records_from(9, 100) == [(s, body_for(s)) for s in (9, 10, 11)]


def test_record_corrupted_on_disk_after_append_is_skipped_and_counted(spool_dir, caplog):
    spool = open_spool(spool_dir)
    append(spool, 5)
    (segment,) = spool_dir.glob("seg-*.log")
    flip_byte_in_body(segment, 2)
    flip_byte_in_body(segment, 4)  # the newest: it must not stay in the backlog either

    with caplog.at_level(logging.WARNING, logger="meterd.spool"):
        assert spool.records_from(0, 10) == [(s, body_for(s)) for s in (0, 1, 3)]
    assert "corrupt record" in caplog.text
    assert spool.skipped_records == 2
    assert spool.backlog == 3
    assert spool.records_from(2, 10) == [(3, body_for(3))]  # counted once, not again
    assert spool.skipped_records == 2
    assert append(spool, 1) == [5]
    assert spool.records_from(4, 10) == [(5, body_for(5))]
    spool.confirm(5)
    assert spool.backlog == 0
    assert spool.backlog_bytes == 0


def test_corrupt_oldest_record_is_not_the_oldest_pending_body(spool_dir):
    spool = open_spool(spool_dir)
    append(spool, 2)
    (segment,) = spool_dir.glob("seg-*.log")
    flip_byte_in_body(segment, 0)
    assert oldest_pending_body(spool) == body_for(1)
    assert spool.skipped_records == 1
    assert pending(spool) == [1]


def test_read_descriptors_stay_few_and_close_closes_them(spool_dir):
    fds_before = len(os.listdir("/proc/self/fd"))
    spool = open_spool(spool_dir, segment_records=2)
    append(spool, 40)  # 20 segments
    for seq in range(0, 40, 2):
        assert spool.records_from(seq, 2) == [(seq, body_for(seq)), (seq + 1, body_for(seq + 1))]
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 1 + 4
    spool.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert pending(spool) == list(range(40))  # still readable, and nothing left open
    assert len(os.listdir("/proc/self/fd")) == fds_before


# --- the newest reading (meterd's trust floor) and the newest confirmed one --------------


def reading_at(ts: float):
    """make_body for a reading taken at ``ts`` (epoch seconds)."""
    from pvsim import wire

    def body(seq: int) -> bytes:
        return wire.encode(wire.Reading("house-a", wire.from_epoch_us(round(ts * 1e6)), 1.0, seq))

    return body


T0 = 1_795_000_000.0


def test_newest_reading_is_known_after_appends_and_after_a_restart(spool_dir):
    spool = open_spool(spool_dir)
    assert spool.newest_us is None and spool.confirmed_ts is None
    for k in (0, 20, 10):  # a replay may record an older one last
        spool.append(reading_at(T0 + k), T0 + k)
    assert spool.newest_us == round((T0 + 20) * 1e6)
    spool.confirm(2)  # all confirmed: only the newest segment stays
    assert spool.confirmed_ts == T0 + 20
    spool.close()
    spool = open_spool(spool_dir)
    assert spool.newest_us == round((T0 + 20) * 1e6)
    assert spool.confirmed_ts == T0 + 20


def test_the_segment_with_the_newest_reading_stays_while_the_newest_is_empty(spool_dir):
    spool = open_spool(spool_dir, segment_records=2)
    for k in range(4):
        spool.append(reading_at(T0 + k), T0 + k)
    spool.confirm(3)
    spool.close()
    spool = open_spool(spool_dir, segment_records=2)  # segment 2 is full: an empty one
    spool.confirm(3)
    spool.close()
    assert segments(spool_dir) == [
        "seg-00000000000000000002.log",  # kept: it holds the newest reading
        "seg-00000000000000000004.log",
    ]
    spool = open_spool(spool_dir, segment_records=2)
    assert spool.newest_us == round((T0 + 3) * 1e6)
    spool.append(reading_at(T0 + 4), T0 + 4)
    spool.confirm(4)
    assert segments(spool_dir) == ["seg-00000000000000000004.log"]


def test_oldest_unconfirmed_reading_time(spool_dir):
    spool = open_spool(spool_dir)
    assert spool.oldest_ts() is None
    spool.append(reading_at(T0), T0)
    spool.append(reading_at(T0 + 10), T0 + 10)
    assert spool.oldest_ts() == T0
    spool.confirm(0)
    assert spool.oldest_ts() == T0 + 10
