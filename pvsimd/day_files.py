"""CSV day files: one file per meter per day, the day taken in the site's timezone.

``<directory>/<meter_id>/<YYYY-MM-DD>.csv`` with the header
``timestamp,meter_id,meter_w,pv_w,sum_w,seq``.  Rows are buffered and written by
:meth:`DayFiles.flush`, which the consumer calls before it acknowledges anything.

Guarantees:

* the header exactly once per file, also after a restart or a crash;
* no torn line survives: a partial last line (a crash mid-write) is cut off on reopening,
  and a failed flush is rolled back to the last complete row, keeping its rows buffered
  for the next attempt;
* one row per reading: a reading whose (meter_id, ts) the file already holds is dropped.
  Readings usually arrive in time order, so a file keeps only its newest timestamp in
  memory and reads its timestamps from disk only when an older one arrives.  The newest
  timestamp comes from a scan of the whole file when it is first opened (rows that
  arrived out of order mean the last row need not be the newest), and is remembered
  when the file is closed to stay under ``max_open``, so reopening it costs no scan.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from datetime import datetime, tzinfo
from pathlib import Path

from pvsim import wire

log = logging.getLogger("pvsimd.files")

HEADER = b"timestamp,meter_id,meter_w,pv_w,sum_w,seq\n"
COLUMNS = HEADER.decode().strip().split(",")


def tenths(watts: float) -> int:
    return round(watts * 10)


def format_tenths(value: int) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}{value // 10}.{value % 10}"


def format_local_ts(ts: datetime, tz: tzinfo) -> str:
    local = ts.astimezone(tz)
    if local.microsecond == 0:
        return local.isoformat(timespec="seconds")
    if local.microsecond % 1000 == 0:
        return local.isoformat(timespec="milliseconds")
    return local.isoformat(timespec="microseconds")


def format_row(reading: wire.Reading, pv_w: float, tz: tzinfo) -> bytes:
    """One CSV row; ``sum_w`` is computed from the rounded values, so it adds up as written."""
    meter = tenths(reading.power_w)
    pv = tenths(pv_w)
    seq = "" if reading.seq is None else str(reading.seq)
    return (
        f"{format_local_ts(reading.ts, tz)},{reading.meter_id},{format_tenths(meter)},"
        f"{format_tenths(pv)},{format_tenths(meter + pv)},{seq}\n"
    ).encode()


def row_ts_us(line: bytes) -> int:
    """The identity (epoch microseconds) of a row's timestamp."""
    return wire.to_epoch_us(datetime.fromisoformat(line.split(b",", 1)[0].decode()))


class DayFile:
    """One open CSV file with its unflushed rows."""

    def __init__(self, path: Path, known: tuple[int, int | None] | None = None):
        """Open (creating) ``path``; ``known`` is (size, newest timestamp) from an earlier
        opening, trusted only while the file still has that size."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = self._repair()
        self.buffer: list[bytes] = []
        self.buffered_ts: list[int] = []
        if known is not None and known[0] == self.size:
            self.newest_us = known[1]
        else:
            self.newest_us = self._newest_on_disk()
        self.seen: set[int] | None = None  # all timestamps, loaded only when needed
        if self.size == 0:
            self.buffer.append(HEADER)

    def _repair(self) -> int:
        """Cut off a torn last line; returns the size of the complete part."""
        size = os.fstat(self.fd).st_size
        if size == 0:
            return 0
        pos = size
        while pos > 0:
            start = max(0, pos - 65536)
            chunk = os.pread(self.fd, pos - start, start)
            if pos == size and chunk.endswith(b"\n"):
                return size
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                good = start + nl + 1
                break
            pos = start
        else:
            good = 0
        log.warning("%s: cut off a torn last line (%d bytes)", self.path, size - good)
        os.ftruncate(self.fd, good)
        if good and os.pread(self.fd, len(HEADER), 0) != HEADER:
            log.warning("%s: does not start with the expected header", self.path)
        return good

    def _timestamps_on_disk(self) -> set[int]:
        seen: set[int] = set()
        data = os.pread(self.fd, self.size, 0)
        for line in data.split(b"\n")[1:]:
            if line:
                try:
                    seen.add(row_ts_us(line))
                except ValueError:
                    continue
        return seen

    def _newest_on_disk(self) -> int | None:
        if self.size <= len(HEADER):
            return None
        return max(self._timestamps_on_disk(), default=None)

    def _load_seen(self) -> set[int]:
        return self._timestamps_on_disk() | set(self.buffered_ts)

    @property
    def known(self) -> tuple[int, int | None]:
        """(size, newest timestamp) of the file as written, for a later reopening."""
        return self.size, self.newest_us

    def add(self, ts_us: int, row: bytes) -> bool:
        """Buffer a row unless the file already holds its timestamp."""
        if self.newest_us is None or ts_us > self.newest_us:
            self.newest_us = ts_us
        else:
            if self.seen is None:
                self.seen = self._load_seen()
            if ts_us in self.seen:
                return False
        if self.seen is not None:
            self.seen.add(ts_us)
        self.buffer.append(row)
        self.buffered_ts.append(ts_us)
        return True

    @property
    def dirty(self) -> bool:
        return bool(self.buffer)

    def flush(self, fsync: bool) -> None:
        """Write the buffered rows; on failure roll the file back and raise OSError."""
        if not self.buffer:
            return
        data = b"".join(self.buffer)
        try:
            if os.fstat(self.fd).st_size != self.size:  # a rollback that failed earlier
                os.ftruncate(self.fd, self.size)
            view = memoryview(data)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
            if fsync:
                os.fsync(self.fd)
        except OSError:
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                log.exception("%s: could not roll back a failed write", self.path)
            raise
        self.size += len(data)
        self.buffer.clear()
        self.buffered_ts.clear()

    def close(self) -> None:
        os.close(self.fd)


class DayFiles:
    """All day files, with at most ``max_open`` kept open (least recently used closed)."""

    def __init__(self, directory: Path, tz: tzinfo, *, fsync: bool = True, max_open: int = 256):
        self.directory = Path(directory)
        self.tz = tz
        self.fsync = fsync
        self.max_open = max_open
        self._open: OrderedDict[tuple[str, str], DayFile] = OrderedDict()
        self._dirty: set[tuple[str, str]] = set()
        # (size, newest timestamp) of files closed to stay under max_open
        self._known: OrderedDict[tuple[str, str], tuple[int, int | None]] = OrderedDict()
        self.max_known = 65536

    def path_for(self, meter_id: str, ts: datetime) -> Path:
        day = ts.astimezone(self.tz).date().isoformat()
        return self.directory / meter_id / f"{day}.csv"

    def _file(self, meter_id: str, ts: datetime) -> tuple[tuple[str, str], DayFile]:
        day = ts.astimezone(self.tz).date().isoformat()
        key = (meter_id, day)
        f = self._open.get(key)
        if f is not None:
            self._open.move_to_end(key)
            return key, f
        if len(self._open) >= self.max_open:
            # close the least recently used files that have nothing buffered; files with
            # buffered rows stay open until the next flush (the limit is briefly exceeded)
            clean = [k for k in self._open if k not in self._dirty]
            for old_key in clean[: len(self._open) - self.max_open + 1]:
                self._forget(old_key, remember=True)
        f = DayFile(self.directory / meter_id / f"{day}.csv", self._known.pop(key, None))
        self._open[key] = f
        return key, f

    def write(self, reading: wire.Reading, pv_w: float) -> bool:
        """Buffer the reading's row; False when it is a repeat of one already written."""
        key, f = self._file(reading.meter_id, reading.ts)
        added = f.add(reading.ts_us, format_row(reading, pv_w, self.tz))
        if added:
            self._dirty.add(key)
        return added

    def flush(self) -> None:
        """Write (and, with fsync, sync) every buffered row; raises OSError on failure.

        A file whose write fails is rolled back to its last complete row and keeps its
        buffered rows, so a later flush writes them again.
        """
        failed: OSError | None = None
        for key in list(self._dirty):
            try:
                self._open[key].flush(self.fsync)
            except OSError as exc:
                failed = failed or exc
                continue
            self._dirty.discard(key)
        if failed is not None:
            raise failed

    def discard_unflushed(self) -> None:
        """Forget buffered rows (their messages go back to the broker unacknowledged)."""
        for key in list(self._dirty):
            self._forget(key, remember=False)  # its state is read from disk again
        self._dirty.clear()

    def _forget(self, key: tuple[str, str], remember: bool) -> None:
        f = self._open.pop(key)
        if remember:
            self._known[key] = f.known
            while len(self._known) > self.max_known:
                self._known.popitem(last=False)
        f.close()

    @property
    def open_files(self) -> int:
        return len(self._open)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            for f in self._open.values():
                f.close()
            self._open.clear()
