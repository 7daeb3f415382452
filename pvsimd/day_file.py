"""One day file: what pvsimd knows of ``<directory>/<meter_id>/<YYYY-MM-DD>.csv``.

:class:`DayFile` holds the file's size (complete rows only), its newest timestamp, the
rows buffered for it and, while it has one, its descriptor (lent by
:class:`pvsimd.open_files.OpenFiles`).  Its jobs:

* **repair**: a torn last line (a crash mid-write) is cut off when the file is examined;
* **repeats**: a reading whose timestamp the file already holds (written or buffered) is
  refused.  Readings usually arrive in time order, so only the newest timestamp is kept
  in memory, and the file's timestamps are read from disk only when an older one
  arrives;
* **writing**: the buffered rows (after the header, for an empty file) in one ``write``;
  a failed write is cut back to the last complete row, keeping the rows buffered;
* **sharing** (a shared output directory, several pvsimd writing it): the file is
  examined, written and cut back only under its lock (:func:`locked`, ``flock``), and
  before writing, :meth:`DayFile.catch_up` looks at its size: when it is not what this
  pvsimd last left, another one appended rows (or cut a torn line) — the file is examined
  again and the buffered rows it now holds are dropped as repeats.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator

from pvsimd import csv_format
from pvsimd.csv_format import row_ts_us

log = logging.getLogger("pvsimd.files")


@contextlib.contextmanager
def locked(fd: int) -> Iterator[None]:
    """An exclusive ``flock`` on a day file, for one examination or write (shared output:
    every pvsimd writing the directory takes it; the kernel frees it if one dies)."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


class DayFile:
    """One day file's state; the descriptor ``fd`` is set while it has one."""

    __slots__ = ("key", "path", "fd", "size", "newest_us", "seen", "rows", "suspect")

    def __init__(self, key: tuple[str, str], path: str):
        self.key = key  # (meter_id, day)
        self.path = path
        self.fd: int | None = None
        self.size = 0  # bytes written and kept (complete rows only)
        self.newest_us: int | None = None
        self.seen: set[int] | None = None  # all timestamps, loaded only when needed
        self.rows: list[str] = []  # buffered, not yet written
        self.suspect = False  # a rollback failed: check the size before the next write

    @property
    def has_rows_on_disk(self) -> bool:
        return self.size > len(csv_format.HEADER)

    def examine(self) -> None:
        """Learn size and newest timestamp from the open file, cutting off a torn line."""
        self.size = self._repair()
        self.seen = None
        self.newest_us = None
        if self.has_rows_on_disk:
            self.newest_us = self._newest_on_disk()
        for row in self.rows:
            ts_us = row_ts_us(row)
            if self.newest_us is None or ts_us > self.newest_us:
                self.newest_us = ts_us

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
        if good and not csv_format.is_header(os.pread(self.fd, len(csv_format.HEADER), 0)):
            log.warning("%s: does not start with the expected header", self.path)
        return good

    def _newest_on_disk(self) -> int | None:
        """The newest timestamp among the rows (rows may be out of order).

        Fast path, about 10 × cheaper than parsing every row: within one UTC offset the
        local time texts sort like the times they name (same layout; "+" sorts before
        "." and the digits), so the greatest row is the newest when every row has the
        offset that one has.  Otherwise (a daylight saving change that day, a changed
        timezone, a damaged row) every row is parsed.
        """
        data = os.pread(self.fd, self.size, 0)
        lines = data.split(b"\n")[1:]
        if lines and not lines[-1]:
            lines.pop()
        if not lines:
            return None
        greatest = max(lines)
        ts_text = greatest.split(b",", 1)[0]
        suffix = ts_text[-6:] + b","  # the UTC offset, "+01:00"
        if suffix[:1] in b"+-" and data.count(suffix) == len(lines):
            try:
                return row_ts_us(ts_text)
            except ValueError:
                pass
        return max(self._timestamps_on_disk(), default=None)

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

    def is_repeat(self, ts_us: int) -> bool:
        """True when the file (written or buffered) already holds ``ts_us``; the slow path
        for a timestamp not newer than the newest (needs the descriptor when the file has
        rows on disk)."""
        if self.seen is None:
            self.seen = self._timestamps_on_disk() if self.has_rows_on_disk else set()
            self.seen.update(row_ts_us(r) for r in self.rows)
        return ts_us in self.seen

    def catch_up(self) -> int:
        """Shared output, under the file's lock: when the file is not as this pvsimd left
        it (another one appended rows, or cut off a torn line), examine it again and drop
        the buffered rows whose timestamps it now holds; returns how many were dropped."""
        if os.fstat(self.fd).st_size == self.size and not self.suspect:
            return 0
        self.suspect = False
        self.examine()
        if not self.rows:
            return 0
        seen = self._timestamps_on_disk() if self.has_rows_on_disk else set()
        kept = []
        for row in self.rows:
            ts_us = row_ts_us(row)
            if ts_us not in seen:
                seen.add(ts_us)
                kept.append(row)
        dropped = len(self.rows) - len(kept)
        self.rows = kept
        self.seen = seen
        return dropped

    def add(self, ts_us: int) -> bool:
        """Take ``ts_us`` as this file's next row unless it is a repeat (False); the
        caller then buffers the row in :attr:`rows`."""
        newest = self.newest_us
        if newest is None or ts_us > newest:
            self.newest_us = ts_us
        elif self.is_repeat(ts_us):
            return False
        if self.seen is not None:
            self.seen.add(ts_us)
        return True

    def write(self) -> tuple[int, list[str]]:
        """Write the buffered rows (after the header when the file is empty); returns
        (size before, rows written) for a rollback.  On failure the file is cut back to
        its last complete row, the rows stay buffered, and OSError is raised."""
        rows = self.rows
        before = self.size
        text = "".join(rows)
        data = (csv_format.HEADER_TEXT + text if before == 0 else text).encode()
        try:
            if self.suspect:  # a rollback that failed earlier
                if os.fstat(self.fd).st_size != before:
                    os.ftruncate(self.fd, before)
                self.suspect = False
            written = os.write(self.fd, data)
            if written < len(data):  # a short write: the rest, piece by piece
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(self.fd, view) :]
        except OSError:
            self.rollback(before)
            raise
        self.size = before + len(data)
        self.rows = []
        return before, rows

    def rollback(self, size: int) -> None:
        """Cut the file back to ``size`` (a complete row); marked suspect if that fails."""
        try:
            os.ftruncate(self.fd, size)
        except OSError:
            self.suspect = True
            log.exception("%s: could not roll back a failed write", self.path)
        self.size = size
