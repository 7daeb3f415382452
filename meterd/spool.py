"""The write-ahead spool: every reading is on disk, with its seq, before it is published.

Layout of the spool directory::

    seg-00000000000000000000.log   records, named by the seq of their first record
    seg-00000000000000010000.log
    confirmed                      highest seq the broker confirmed (all below it too)

A record is one line ``<seq> <crc32 of "<seq> <body>", 8 hex> <body>\\n``, the body being the
reading's JSON exactly as published.  Seq is assigned as the record is written, so a
restart continues the sequence: the next seq is one past the last intact record (or the
name of an empty newest segment).  A torn or corrupt record, as a power cut may leave,
is skipped with a warning; a torn tail is cut off.  Segments whose records are all
confirmed are deleted.  A lost ``confirmed`` file only means readings are published
again, and pvsimd drops repeats.

In memory the spool keeps no bodies, only an index of the unconfirmed records
(:class:`_PendingIndex`): ``array`` columns of seq, segment (its first seq), byte offset
in the segment file, record length and reading time, 36 bytes a record, oldest first.
:meth:`Spool.records_from` reads a window of bodies back from the segment files (one
``pread`` per segment, through a few cached read descriptors) and checks each record's
CRC again: a record damaged on disk since it was written is skipped, counted and logged
as recovery does, never published.  Only pending records are indexed, and a segment is
deleted only once all its records are confirmed, so a read never targets a deleted one.

The spool also knows the time of the newest reading it ever recorded
(:attr:`Spool.newest_us`, the last one before a restart included: the newest segment,
and while it is still empty the one before it, is never deleted) — meterd never takes
a timestamp at or before it again — and that of the newest reading the broker
confirmed (:attr:`Spool.confirmed_ts`).

Bounds: when the unconfirmed readings take more than ``max_bytes`` or the oldest is
older than ``max_age`` seconds, the oldest are dropped (counted in :attr:`dropped`) and a
WARNING names their seq ranges, at once and then at most every
:data:`DROP_REPORT_INTERVAL` seconds while the spool stays full.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path

from pvsim import durable, wire

log = logging.getLogger("meterd.spool")

_PREFIX = "seg-"
_SUFFIX = ".log"
DROP_REPORT_INTERVAL = 10.0
_READERS = 4  # read descriptors kept open, most recently used segments


def _segment_name(first_seq: int) -> str:
    return f"{_PREFIX}{first_seq:020d}{_SUFFIX}"


def encode_record(seq: int, body: bytes) -> bytes:
    return b"%d %08x %s\n" % (seq, _crc(seq, body), body)


def _crc(seq: int, body: bytes) -> int:
    """The checksum covers the seq too, so a flipped bit in it is caught as well."""
    return zlib.crc32(body, zlib.crc32(b"%d " % seq))


def decode_record(line: bytes) -> tuple[int, bytes] | None:
    """(seq, body) of an intact record line (without its newline), else None."""
    try:
        seq_text, crc_text, body = line.split(b" ", 2)
        seq = int(seq_text)
        crc = int(crc_text, 16)
    except ValueError:
        return None
    if seq < 0 or _crc(seq, body) != crc:
        return None
    return seq, body


class _PendingIndex:
    """Where each unconfirmed record is on disk, oldest first, in compact columns.

    Popped records are only skipped over (``head``) and cut off in bulk now and then,
    so taking the oldest is cheap; positions are absolute (``head`` .. ``end``)."""

    def __init__(self) -> None:
        self.seq = array("q")
        self.segment = array("q")  # first seq of the record's segment (its file name)
        self.offset = array("q")  # byte offset of the record in its segment file
        self.size = array("I")  # record length, newline included
        self.ts = array("d")  # reading time, epoch seconds
        self.head = 0

    def __len__(self) -> int:
        return len(self.seq) - self.head

    @property
    def end(self) -> int:
        return len(self.seq)

    def _columns(self) -> tuple[array, ...]:
        return self.seq, self.segment, self.offset, self.size, self.ts

    def append(self, seq: int, segment: int, offset: int, size: int, ts: float) -> None:
        self.seq.append(seq)
        self.segment.append(segment)
        self.offset.append(offset)
        self.size.append(size)
        self.ts.append(ts)

    def popleft(self) -> tuple[int, int]:
        """Forget the oldest record; its (seq, size)."""
        i = self.head
        seq, size = self.seq[i], self.size[i]
        self.head += 1
        if self.head == len(self.seq) or (self.head >= 4096 and 2 * self.head >= len(self.seq)):
            for column in self._columns():
                del column[: self.head]
            self.head = 0
        return seq, size

    def remove(self, i: int) -> int:
        """Forget the record at position ``i``; its size."""
        size = self.size[i]
        for column in self._columns():
            del column[i]
        return size

    def find(self, seq: int) -> int:
        """Position of the first record with seq >= ``seq`` (``end`` if none)."""
        return bisect_left(self.seq, seq, self.head)


class Spool:
    """The write-ahead spool of one meter: segments on disk, the sequence, the index of
    unconfirmed records, the confirmed mark and the bounds (module docstring)."""

    def __init__(
        self,
        directory: Path,
        *,
        fsync: bool = True,
        segment_records: int = 10_000,
        watermark_interval: float = 1.0,
        max_bytes: int | None = None,
        max_age: float | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.directory = Path(directory)
        self.fsync = fsync
        self.segment_records = segment_records
        self.watermark_interval = watermark_interval
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._pending = _PendingIndex()
        self._backlog = 0  # len(self._pending), readable without the lock
        self._pending_bytes = 0
        self._readers: dict[int, int] = {}  # segment -> read descriptor, oldest use first
        self.dropped = 0
        self._drop_report: list[list[int]] = []  # seq ranges dropped, not yet logged
        self._drop_reported_at = float("-inf")
        self._segments: list[int] = []  # first seq of each segment, ascending
        self._fd: int | None = None
        self._active_count = 0
        self._next_seq = 0
        self._confirmed = -1
        self._saved_confirmed = -1
        self._saved_at = 0.0
        self.skipped_records = 0
        self.newest_us: int | None = None  # the newest reading's time ever recorded
        self.confirmed_ts: float | None = None  # the newest confirmed reading's time

    # --- opening and recovery ----------------------------------------------------------

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._confirmed = self._saved_confirmed = self._read_watermark()
        self._segments = sorted(
            int(p.name[len(_PREFIX) : -len(_SUFFIX)])
            for p in self.directory.glob(f"{_PREFIX}*{_SUFFIX}")
            if p.name[len(_PREFIX) : -len(_SUFFIX)].isdigit()
        )
        next_seq = self._confirmed + 1
        for i, first in enumerate(self._segments):
            last_segment = i == len(self._segments) - 1
            count, last_seq = self._recover_segment(first, last_segment)
            next_seq = max(next_seq, first if last_seq is None else last_seq + 1)
            if last_segment:
                self._active_count = count
        self._next_seq = next_seq
        if not self._segments or self._active_count >= self.segment_records:
            self._new_segment(self._next_seq)
        else:
            self._fd = os.open(self._path(self._segments[-1]), os.O_WRONLY | os.O_APPEND)
        self._drop_confirmed_segments(force_save=False)
        with self._lock:
            self._enforce_bounds()
        if self._pending:
            log.info(
                "spool: %d readings waiting to be published (seq %d..%d)",
                len(self._pending),
                self._pending.seq[self._pending.head],
                self._pending.seq[-1],
            )

    def _read_watermark(self) -> int:
        try:
            return int((self.directory / "confirmed").read_text().strip() or "-1")
        except FileNotFoundError:
            return -1
        except ValueError:
            log.warning("spool: unreadable 'confirmed' file; publishing the whole spool again")
            return -1

    def _path(self, first_seq: int) -> Path:
        return self.directory / _segment_name(first_seq)

    def _recover_segment(self, first: int, is_last: bool) -> tuple[int, int | None]:
        path = self._path(first)
        data = path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning(
                "spool: %s ends in a torn record (%d bytes, from a crash or power cut); "
                "cutting it off",
                path.name,
                len(data) - end,
            )
            with open(path, "r+b") as fh:
                fh.truncate(end)
                os.fsync(fh.fileno())
            self.skipped_records += 1
        count = 0
        last_seq: int | None = None
        offset = 0
        for line in data[:end].split(b"\n")[:-1]:
            line_offset, offset = offset, offset + len(line) + 1
            record = decode_record(line)
            if record is None or (last_seq is not None and record[0] <= last_seq):
                log.warning("spool: %s holds a corrupt record; skipping it", path.name)
                self.skipped_records += 1
                continue
            seq, body = record
            count += 1
            last_seq = seq
            ts_us = _reading_us(body)
            if ts_us is not None and (self.newest_us is None or ts_us > self.newest_us):
                self.newest_us = ts_us
            if seq > self._confirmed:
                ts = time.time() if ts_us is None else ts_us / 1_000_000
                self._push(seq, first, line_offset, len(line) + 1, ts)
            elif ts_us is not None:
                self._confirmed_at(ts_us / 1_000_000)
        return count, last_seq

    # --- writing -----------------------------------------------------------------------

    def _new_segment(self, first_seq: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self._path(first_seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        if first_seq not in self._segments:
            self._segments.append(first_seq)
        self._active_count = 0
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        if self.fsync:
            durable.fsync_directory(self.directory)

    def append(self, make_body: Callable[[int], bytes], ts: float | None = None) -> int:
        """Record a reading taken at ``ts`` (epoch seconds; now when None);
        ``make_body(seq)`` builds its body.  Returns the seq assigned."""
        with self._lock:
            seq = self._next_seq
            body = make_body(seq)
            if self._active_count >= self.segment_records:
                self._new_segment(seq)
            record = encode_record(seq, body)
            size = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                written = os.write(self._fd, record)
                if written != len(record):
                    raise OSError(f"short write ({written} of {len(record)} bytes)")
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                os.ftruncate(self._fd, size)  # leave no partial record behind
                raise
            self._active_count += 1
            self._next_seq = seq + 1
            ts = self.clock() if ts is None else ts
            ts_us = round(ts * 1_000_000)
            if self.newest_us is None or ts_us > self.newest_us:
                self.newest_us = ts_us
            self._push(seq, self._segments[-1], size, len(record), ts)
            self._enforce_bounds()
            return seq

    def _push(self, seq: int, segment: int, offset: int, size: int, ts: float) -> None:
        self._pending.append(seq, segment, offset, size, ts)
        self._pending_bytes += size
        self._backlog += 1

    def _pop_oldest(self) -> int:
        seq, size = self._pending.popleft()
        self._pending_bytes -= size
        self._backlog -= 1
        return seq

    def _over_bounds(self) -> bool:
        if not self._pending:
            return False
        if self.max_bytes is not None and self._pending_bytes > self.max_bytes:
            return True
        oldest_ts = self._pending.ts[self._pending.head]
        return self.max_age is not None and self.clock() - oldest_ts > self.max_age

    def _enforce_bounds(self) -> None:
        """Drop the oldest readings while the spool is over its bounds (lock held)."""
        dropped_upto = None
        while self._over_bounds() and len(self._pending) > 1:
            seq = self._pop_oldest()
            self.dropped += 1
            dropped_upto = seq
            if self._drop_report and self._drop_report[-1][1] == seq - 1:
                self._drop_report[-1][1] = seq
            else:
                self._drop_report.append([seq, seq])
        if dropped_upto is not None and dropped_upto > self._confirmed:
            self._confirmed = dropped_upto
            self._drop_confirmed_segments(force_save=True)
        if self._drop_report and (
            time.monotonic() - self._drop_reported_at >= DROP_REPORT_INTERVAL
        ):
            self._report_drops()

    def _report_drops(self) -> None:
        ranges = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in self._drop_report)
        count = sum(b - a + 1 for a, b in self._drop_report)
        log.warning(
            "spool full (max_bytes %s, max_age %s s): dropped the %d oldest unpublished "
            "readings, seq %s",
            self.max_bytes,
            self.max_age,
            count,
            ranges,
        )
        self._drop_report.clear()
        self._drop_reported_at = time.monotonic()

    # --- reading and confirming --------------------------------------------------------

    def records_from(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` unconfirmed records with seq >= ``seq``, oldest first."""
        with self._lock:
            records: list[tuple[int, bytes]] = []
            i = self._pending.find(seq)  # seqs ascend (gaps where a record was skipped)
            while len(records) < limit and i < self._pending.end:
                got = self._read(i, min(limit - len(records), self._pending.end - i))
                records += got
                i += len(got)  # the corrupt ones left the index
            return records

    def _read(self, start: int, n: int) -> list[tuple[int, bytes]]:
        """The intact records at positions ``start`` .. ``start + n`` of the index, read
        from their segments; corrupt ones are dropped from the index (lock held)."""
        index = self._pending
        records: list[tuple[int, bytes]] = []
        corrupt: list[int] = []
        i, stop = start, start + n
        while i < stop:
            segment = index.segment[i]
            j = i + 1
            while j < stop and index.segment[j] == segment:
                j += 1
            base = index.offset[i]
            data = self._pread(segment, base, index.offset[j - 1] + index.size[j - 1] - base)
            for k in range(i, j):
                at = index.offset[k] - base
                line = data[at : at + index.size[k]]
                record = decode_record(line[:-1]) if line.endswith(b"\n") else None
                if record is None or record[0] != index.seq[k]:
                    corrupt.append(k)
                else:
                    records.append(record)
            i = j
        for k in reversed(corrupt):
            log.warning(
                "spool: %s holds a corrupt record; skipping it",
                self._path(index.segment[k]).name,
            )
            self.skipped_records += 1
            self._pending_bytes -= index.remove(k)
            self._backlog -= 1
        return records

    def _pread(self, segment: int, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` of a segment (fewer if it is shorter)."""
        fd = self._readers.pop(segment, None)
        if fd is None:
            try:
                fd = os.open(self._path(segment), os.O_RDONLY)
            except FileNotFoundError:
                return b""  # gone behind our back: its records read as corrupt
        try:
            return os.pread(fd, size, offset)
        finally:
            self._readers[segment] = fd  # now the most recently used
            keep = _READERS if self._fd is not None else 0  # a closed spool keeps none open
            while len(self._readers) > keep:
                os.close(self._readers.pop(next(iter(self._readers))))

    def confirm(self, upto_seq: int) -> None:
        """The broker has every reading up to and including ``upto_seq``."""
        with self._lock:
            if upto_seq <= self._confirmed:
                return
            self._confirmed = upto_seq
            index = self._pending
            newest = None
            while index and index.seq[index.head] <= upto_seq:
                ts = index.ts[index.head]
                if newest is None or ts > newest:
                    newest = ts
                self._pop_oldest()
            if newest is not None:
                self._confirmed_at(newest)
            if time.monotonic() - self._saved_at >= self.watermark_interval:
                self._save_watermark(durable=False)
            self._drop_confirmed_segments(force_save=True)

    def _confirmed_at(self, ts: float) -> None:
        if self.confirmed_ts is None or ts > self.confirmed_ts:
            self.confirmed_ts = ts

    def _save_watermark(self, durable: bool) -> None:
        tmp = self.directory / "confirmed.tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{self._confirmed}\n")
            if durable and self.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, self.directory / "confirmed")
        if durable:
            self._fsync_dir()
        self._saved_confirmed = self._confirmed
        self._saved_at = time.monotonic()

    def _drop_confirmed_segments(self, force_save: bool) -> None:
        """Delete segments whose records are all confirmed — never the newest, nor,
        while the newest is still empty, the one before it (it holds the newest reading,
        :attr:`newest_us`, for the next start)."""
        pairs = list(zip(self._segments, self._segments[1:], strict=False))
        if self._active_count == 0:
            pairs = pairs[:-1]
        removable = [first for first, nxt in pairs if nxt - 1 <= self._confirmed]
        if not removable:
            return
        if force_save and self._saved_confirmed < self._confirmed:
            self._save_watermark(durable=True)
        for first in removable:
            fd = self._readers.pop(first, None)
            if fd is not None:
                os.close(fd)
            self._path(first).unlink(missing_ok=True)
            self._segments.remove(first)

    # --- state -------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Readings recorded but not yet confirmed by the broker."""
        return self._backlog

    @property
    def backlog_bytes(self) -> int:
        return self._pending_bytes

    def oldest_ts(self) -> float | None:
        """The time of the oldest unconfirmed reading (epoch seconds), None when there
        is none (any thread)."""
        with self._lock:
            index = self._pending
            return index.ts[index.head] if index else None

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def confirmed(self) -> int:
        return self._confirmed

    def close(self) -> None:
        with self._lock:
            if self._drop_report:
                self._report_drops()
            while self._readers:
                os.close(self._readers.popitem()[1])
            if self._fd is None:
                return
            if self._confirmed != self._saved_confirmed:
                self._save_watermark(durable=True)
            os.close(self._fd)
            self._fd = None


def _reading_us(body: bytes) -> int | None:
    """The reading's timestamp (epoch microseconds) from its body; None if unreadable."""
    try:
        return wire.to_epoch_us(wire.parse_ts(json.loads(body)["ts"]))
    except (ValueError, KeyError, TypeError):
        return None
