"""CSV day files: one file per meter per day, the day taken in the site's timezone.

``<directory>/<meter_id>/<YYYY-MM-DD>.csv`` with the header
``timestamp,meter_id,meter_w,pv_w,sum_w,seq``.  Rows are buffered by
:meth:`DayFiles.write` and written by :meth:`DayFiles.flush`, which makes them durable
(``fsync``, below) before it returns; the consumer acknowledges only after it.

``fsync = batch`` (the default): one ``syncfs(2)`` per flush for all the files it wrote
(see :mod:`pvsim.durable`); ``fsync = file``: ``fsync(2)`` each written file and the
directory of each new one (for a filesystem shared with heavy writers); ``fsync = off``:
leave it to the kernel.  Where the C library has no ``syncfs``, ``batch`` falls back to
``file``.

Guarantees:

* the header exactly once per file, also after a restart or a crash;
* no torn line survives: a partial last line (a crash mid-write) is cut off when the file
  is first opened, and a failed flush is rolled back to the last complete row, keeping
  its rows buffered for the next attempt;
* one row per reading: a reading whose (meter_id, ts) the file already holds is dropped.
  Readings usually arrive in time order, so a file keeps only its newest timestamp in
  memory and reads its timestamps from disk only when an older one arrives.  The newest
  timestamp comes from a scan of the whole file when it is first opened (rows that
  arrived out of order mean the last row need not be the newest);
* at most ``max_open`` descriptors on day files.  What a file needs between flushes
  (size, newest timestamp, buffered rows) lives in memory apart from its descriptor, so
  a descriptor can be closed at any time and the file reopened at the next flush with a
  single ``open``; a file's size is checked on every reopening, and a file changed by
  someone else is examined again.

Cost per reading: one dictionary lookup for what depends on the timestamp alone (the
local time text, the day, the epoch microseconds; many meters share a timestamp), one
for the file, and a formatted row appended to a list.  Per flush: one ``write`` per file
touched (plus an ``open`` and ``close`` when its descriptor was not kept) and one
``syncfs``.  Working through a backlog, commits append to the journal instead
(:meth:`DayFiles.journal_out`, :mod:`pvsimd.journal`) and the rows stay buffered until
the next full write.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict, deque
from datetime import datetime, tzinfo
from pathlib import Path

from pvsim import durable, wire
from pvsimd.journal import Journal

log = logging.getLogger("pvsimd.files")

HEADER = b"timestamp,meter_id,meter_w,pv_w,sum_w,seq\n"
COLUMNS = HEADER.decode().strip().split(",")
_HEADER_TEXT = HEADER.decode()

FSYNC_MODES = ("batch", "file", "off")  # [output] fsync
TIME_CACHE = 4096  # timestamps whose local text and day are remembered
MAX_KNOWN = 65536  # files whose state is remembered (about 250 bytes each)


def format_local_ts(ts: datetime, tz: tzinfo) -> str:
    local = ts.astimezone(tz)
    if local.microsecond == 0:
        return local.isoformat(timespec="seconds")
    if local.microsecond % 1000 == 0:
        return local.isoformat(timespec="milliseconds")
    return local.isoformat(timespec="microseconds")


def _row(local_ts: str, meter_id: str, meter_w: float, pv_w: float, seq: int | None) -> str:
    # Watts with one decimal; sum_w from the rounded values, so the row adds up as written.
    # An integer number of tenths divided by 10 is the double nearest that decimal, which
    # ".1f" prints exactly.
    meter = round(meter_w * 10)
    pv = round(pv_w * 10)
    return (
        f"{local_ts},{meter_id},{meter / 10:.1f},{pv / 10:.1f},{(meter + pv) / 10:.1f},"
        f"{'' if seq is None else seq}\n"
    )


def format_row(reading: wire.Reading, pv_w: float, tz: tzinfo) -> bytes:
    """One CSV row; ``sum_w`` is computed from the rounded values, so it adds up as written."""
    local = format_local_ts(reading.ts, tz)
    return _row(local, reading.meter_id, reading.power_w, pv_w, reading.seq).encode()


def row_ts_us(line: bytes | str) -> int:
    """The identity (epoch microseconds) of a row's timestamp."""
    if isinstance(line, bytes):
        line = line.decode()
    return wire.to_epoch_us(datetime.fromisoformat(line.split(",", 1)[0]))


class DayFile:
    """What pvsimd knows of one day file: its size, newest timestamp, unflushed rows, and
    its descriptor while it has one."""

    __slots__ = ("key", "path", "fd", "size", "newest_us", "seen", "rows", "suspect")

    def __init__(self, key: tuple[str, str], path: str):
        self.key = key
        self.path = path
        self.fd: int | None = None
        self.size = 0  # bytes written and kept (complete rows only)
        self.newest_us: int | None = None
        self.seen: set[int] | None = None  # all timestamps, loaded only when needed
        self.rows: list[str] = []  # not yet written
        self.suspect = False  # a rollback failed: check the size before the next write

    def examine(self) -> None:
        """Learn size and newest timestamp from the open file, cutting off a torn line."""
        self.size = self._repair()
        if self.rows and self.rows[0] == _HEADER_TEXT:
            del self.rows[0]
        self.seen = None
        self.newest_us = None
        if self.size > len(HEADER):
            self.newest_us = self._newest_on_disk()
        for row in self.rows:
            ts_us = row_ts_us(row)
            if self.newest_us is None or ts_us > self.newest_us:
                self.newest_us = ts_us
        if self.size == 0:
            self.rows.insert(0, _HEADER_TEXT)

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
        for a timestamp not newer than the newest."""
        if self.seen is None:
            self.seen = self._timestamps_on_disk() if self.size > len(HEADER) else set()
            self.seen.update(row_ts_us(r) for r in self.rows if r != _HEADER_TEXT)
        return ts_us in self.seen

    def write(self) -> tuple[int, list[str]]:
        """Write the buffered rows; returns (size before, rows written) for a rollback.
        On failure the file is cut back to its last complete row, the rows stay
        buffered, and OSError is raised."""
        rows = self.rows
        data = "".join(rows).encode()
        before = self.size
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
        try:
            os.ftruncate(self.fd, size)
        except OSError:
            self.suspect = True
            log.exception("%s: could not roll back a failed write", self.path)
        self.size = size


class DayFiles:
    """All day files, with at most ``max_open`` descriptors open (least recently used
    closed first)."""

    def __init__(
        self,
        directory: Path,
        tz: tzinfo,
        *,
        fsync: bool | str = True,
        max_open: int = 256,
        journal: bool = False,
    ):
        self.directory = Path(directory)
        self.tz = tz
        if fsync is True:
            fsync = "batch"
        elif fsync is False:
            fsync = "off"
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {FSYNC_MODES}, not {fsync!r}")
        if fsync == "batch" and not durable.syncfs_available():
            log.warning("syncfs is not available here; fsync = batch syncs file by file")
            fsync = "file"
        self.fsync: str = fsync
        self.max_open = max(1, max_open)
        self.max_known = MAX_KNOWN
        self._dir = str(self.directory)
        self._dir_fd: int | None = None
        self._files: OrderedDict[tuple[str, str], DayFile] = OrderedDict()
        self._fds: OrderedDict[tuple[str, str], DayFile] = OrderedDict()  # LRU of open ones
        self._dirty: list[DayFile] = []  # files with buffered rows
        self._times: dict[datetime, tuple[int, str, str]] = {}
        self.last_day = ""  # the local day of the reading last buffered
        self._new_dirs: list[str] = []  # created since the last sync (fsync = file)
        # fsync = batch: what write_out wrote, by generation, until a sync succeeds
        self._generation = 0
        self._unsynced: deque[tuple[int, list[tuple[DayFile, int, list[str]]]]] = deque()
        # the backlog journal (fsync = batch only): rows buffered since the last append
        # or write_out, and the generations of the last append and the last complete write
        self.journal = Journal(self._dir) if journal and fsync == "batch" else None
        self._fresh: list[str] = []
        self._journal_gen = 0
        self._written_gen = 0

    # --- per timestamp -------------------------------------------------------------------

    def _time(self, ts: datetime) -> tuple[int, str, str]:
        """(epoch microseconds, local day, local time text) of ``ts``, cached."""
        t = self._times.get(ts)
        if t is None:
            if len(self._times) >= TIME_CACHE:
                self._times.clear()
            local = ts.astimezone(self.tz)
            t = (wire.to_epoch_us(ts), local.date().isoformat(), format_local_ts(ts, self.tz))
            self._times[ts] = t
        return t

    def day_of(self, ts: datetime) -> str:
        """The site's local day of ``ts``, ``YYYY-MM-DD``: the file a reading goes to."""
        return self._time(ts)[1]

    def path_for(self, meter_id: str, ts: datetime) -> Path:
        return self.directory / meter_id / f"{self.day_of(ts)}.csv"

    # --- writing -------------------------------------------------------------------------

    def write(self, reading: wire.Reading, pv_w: float) -> bool:
        """Buffer the reading's row; False when it is a repeat of one already written."""
        ts_us, day, local = self._time(reading.ts)
        meter_id = reading.meter_id
        f = self._new_row_for(meter_id, day, ts_us)
        if f is None:
            return False
        # as _row(), inlined: this runs for every reading
        meter = round(reading.power_w * 10)
        pv = round(pv_w * 10)
        seq = reading.seq
        row = (
            f"{local},{meter_id},{meter / 10:.1f},{pv / 10:.1f},{(meter + pv) / 10:.1f},"
            f"{'' if seq is None else seq}\n"
        )
        f.rows.append(row)
        self._fresh.append(row)
        self.last_day = day
        return True

    def _new_row_for(self, meter_id: str, day: str, ts_us: int) -> DayFile | None:
        """The day file a row at ``ts_us`` goes to, marked dirty; None when the file
        (written or buffered) already holds that timestamp."""
        key = (meter_id, day)
        f = self._files.get(key)
        if f is None:
            f = self._first_open(key)
        else:
            self._files.move_to_end(key)
        newest = f.newest_us
        if newest is None or ts_us > newest:
            f.newest_us = ts_us
        else:
            if f.seen is None and f.size > len(HEADER):
                self._descriptor(f)  # is_repeat reads the file's timestamps
            if f.is_repeat(ts_us):
                return None
        if f.seen is not None:
            f.seen.add(ts_us)
        if not f.rows:
            self._dirty.append(f)
        return f

    # --- the backlog journal (see pvsimd.journal) ----------------------------------------

    def journal_out(self, now: float) -> int:
        """Append the rows buffered since the last append or write to the journal, without
        making them durable (see :meth:`sync`); they stay buffered for the next write.
        Returns this append's generation; OSError when appending failed."""
        self.journal.append("".join(self._fresh).encode(), now)
        self._fresh = []
        self._generation += 1
        self._journal_gen = self._generation
        return self._generation

    def replay_journal(self) -> tuple[int, int]:
        """Write the rows a previous run left in the journal to their day files, make
        them durable and empty the journal; returns (rows written, repeats dropped).
        Lines that are not rows are skipped with a WARNING.  OSError on failure."""
        journal = self.journal
        if journal is None:
            return 0, 0
        journal.open()
        added = repeats = 0
        for line in journal.read_rows():
            try:
                fields = line.split(",")
                if len(fields) != 6 or not wire.is_valid_meter_id(fields[1]):
                    raise ValueError("not a row")
                local = datetime.fromisoformat(fields[0])
                if local.utcoffset() is None:
                    raise ValueError("no UTC offset")
                ts_us = wire.to_epoch_us(local)
            except ValueError:
                log.warning("%s: skipped a line that is not a row: %r", journal.path, line[:80])
                continue
            f = self._new_row_for(fields[1], local.date().isoformat(), ts_us)
            if f is None:
                repeats += 1
            else:
                f.rows.append(line)
                added += 1
        self.flush()
        durable.syncfs(self.sync_target())  # also what an earlier run wrote, unsynced
        journal.empty()
        return added, repeats

    def flush(self) -> None:
        """Write every buffered row and make it durable; raises OSError on failure.

        A file whose write fails is rolled back to its last complete row and keeps its
        buffered rows, so a later flush writes them again; the other files are written.
        When making them durable fails, every file written since the last successful
        sync is rolled back and keeps its rows buffered.
        """
        failed: OSError | None = None
        try:
            generation = self.write_out()
        except OSError as exc:
            failed = exc
            generation = self._generation
        if self._unsynced:
            try:
                self.sync()
            except OSError:
                self.roll_back_unsynced()
                raise
            self.mark_synced(generation)
        if failed is not None:
            raise failed

    def write_out(self) -> int:
        """Write every buffered row, without making it durable (``fsync = batch``: see
        :meth:`sync`); returns this write's generation, for :meth:`mark_synced`.

        A file whose write fails is rolled back to its last complete row and keeps its
        buffered rows; the other files are written, and then OSError is raised.
        """
        dirty, self._dirty = self._dirty, []
        self._fresh = []  # written, or left buffered for the next write (see journal_out)
        written: list[tuple[DayFile, int, list[str]]] = []
        failed: OSError | None = None
        fsync_file = self.fsync == "file"
        for f in dirty:
            try:
                self._descriptor(f)
                before, rows = f.write()
                if fsync_file:
                    self._fsync_file(f, before, rows)
            except OSError as exc:
                failed = failed or exc
                self._dirty.append(f)
                continue
            written.append((f, before, rows))
        self._generation += 1
        if written and self.fsync == "batch":
            self._unsynced.append((self._generation, written))
        if failed is not None:
            raise failed
        self._written_gen = self._generation  # every buffered row written
        return self._generation

    def sync_target(self) -> int:
        """The descriptor :func:`durable.syncfs` takes (the output directory), opened in
        the calling thread; it stays open until :meth:`close`."""
        return self._directory_fd()

    def sync(self) -> None:
        """Make everything written and appended so far durable (``fsync = batch``): one
        ``syncfs``, or only the journal's ``fdatasync`` when no day file was written
        since the last sync.  OSError on failure.  Safe to call from another thread once
        :meth:`sync_target` was called."""
        if self.journal is not None and not self._unsynced and self.journal.fd is not None:
            self.journal.sync()
        else:
            durable.syncfs(self.sync_target())

    @property
    def unsynced(self) -> bool:
        """Rows written but not yet known to be durable (``fsync = batch``)."""
        return bool(self._unsynced)

    def mark_synced(self, generation: int) -> None:
        """A sync that began after :meth:`write_out` or :meth:`journal_out` returned
        ``generation`` succeeded.  The journal is emptied once a complete write that came
        after its last append is durable."""
        while self._unsynced and self._unsynced[0][0] <= generation:
            self._unsynced.popleft()
        journal = self.journal
        if (
            journal is not None
            and journal.size
            and self._journal_gen < self._written_gen <= generation
        ):
            try:
                journal.empty()
            except OSError as exc:  # kept: replayed (as repeats) after a restart
                log.warning("%s: could not empty the journal: %s", journal.path, exc)

    @property
    def journaled(self) -> bool:
        """Rows in the journal that a checkpoint has not yet made durable in their files."""
        return self.journal is not None and self.journal.size > 0

    def roll_back_unsynced(self) -> None:
        """A sync failed: cut every file written since the last successful sync back to
        its size then, and buffer those rows again (before any newer ones)."""
        self._written_gen = 0  # the journal waits for the next complete write
        if not self._unsynced:
            return
        log.error(
            "syncing %s failed: rolling back %d writes not known to be durable",
            self._dir,
            sum(len(written) for _g, written in self._unsynced),
        )
        first: dict[int, tuple[DayFile, int, list[str]]] = {}
        for _generation, written in self._unsynced:
            for f, before, rows in written:
                entry = first.get(id(f))
                if entry is None:
                    first[id(f)] = (f, before, list(rows))
                else:
                    entry[2].extend(rows)
        self._unsynced.clear()
        for f, before, rows in first.values():
            if self._files.get(f.key) is not f:
                continue  # forgotten (discard_unflushed): examined afresh when next used
            try:
                self._descriptor(f, check=False)
            except OSError:
                f.suspect = True
                f.size = before
            else:
                f.rollback(before)
            if not f.rows:
                self._dirty.append(f)
            f.rows[:0] = rows

    def _fsync_file(self, f: DayFile, before: int, rows: list[str]) -> None:
        try:
            os.fsync(f.fd)
            if before == 0:  # a new file: its directory entry too
                durable.fsync_directory(os.path.dirname(f.path))
            while self._new_dirs:
                durable.fsync_directory(self._new_dirs[-1])
                self._new_dirs.pop()
        except OSError:
            f.rows[:0] = rows
            f.rollback(before)
            raise

    def discard_unflushed(self) -> None:
        """Forget buffered rows (their messages go back to the broker unacknowledged);
        those files are examined afresh when next written to.  Nothing is forgotten while
        the journal holds rows: they are buffered too, and the next write takes them all
        (the repeat check then drops the redelivered ones)."""
        if self.journaled:
            return
        self._fresh = []
        for f in self._dirty:
            self._forget(f.key)
        self._dirty = []

    # --- descriptors ---------------------------------------------------------------------

    def _first_open(self, key: tuple[str, str]) -> DayFile:
        meter_id, day = key
        f = DayFile(key, f"{self._dir}/{meter_id}/{day}.csv")
        self._open(f)
        try:
            f.examine()
        except OSError:
            self._close(f)
            raise
        self._files[key] = f
        if f.rows:  # the header of a new file
            self._dirty.append(f)
        if len(self._files) > self.max_known:
            self._shrink()
        return f

    def _descriptor(self, f: DayFile, check: bool = True) -> None:
        """Make sure ``f`` has a descriptor, checking that the file is as we left it."""
        if f.fd is not None:
            self._fds.move_to_end(f.key)
            return
        self._open(f)
        if f.suspect or not check:
            return
        size = os.fstat(f.fd).st_size
        if size != f.size:
            log.warning(
                "%s: changed outside pvsimd (%d bytes, expected %d); examining it again",
                f.path,
                size,
                f.size,
            )
            f.examine()

    def _open(self, f: DayFile) -> None:
        while len(self._fds) >= self.max_open:
            _, old = self._fds.popitem(last=False)
            os.close(old.fd)
            old.fd = None
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        try:
            f.fd = os.open(f.path, flags, 0o640)
        except FileNotFoundError:  # a new meter: its directory first
            parent = os.path.dirname(f.path)
            os.makedirs(parent, exist_ok=True)
            if self.fsync == "file":
                self._new_dirs.append(self._dir)
            f.fd = os.open(f.path, flags, 0o640)
        self._fds[f.key] = f

    def _close(self, f: DayFile) -> None:
        if f.fd is not None:
            self._fds.pop(f.key, None)
            os.close(f.fd)
            f.fd = None

    def _forget(self, key: tuple[str, str]) -> None:
        f = self._files.pop(key, None)
        if f is not None:
            self._close(f)

    def _shrink(self) -> None:
        """Forget the least recently written files that have nothing buffered."""
        excess = len(self._files) - self.max_known
        victims = []
        for key, f in self._files.items():
            if len(victims) >= excess:
                break
            if not f.rows:
                victims.append(key)
        for key in victims:
            self._forget(key)

    def _directory_fd(self) -> int:
        if self._dir_fd is None:
            self._dir_fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._dir_fd

    @property
    def open_files(self) -> int:
        """Descriptors open on day files (at most ``max_open``)."""
        return len(self._fds)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            for f in self._fds.values():
                os.close(f.fd)
                f.fd = None
            self._fds.clear()
            if self.journal is not None:
                self.journal.close()
            if self._dir_fd is not None:
                os.close(self._dir_fd)
                self._dir_fd = None
