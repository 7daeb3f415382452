"""The day files as a whole: rows buffered, written, made durable, and rolled back.

``<directory>/<meter_id>/<YYYY-MM-DD>.csv``, the day taken in the site's timezone, in
the format of :mod:`pvsimd.csv_format`.  :class:`DayFiles` ties the parts of the write
path together:

* :meth:`DayFiles.buffer` takes a reading's row for its file unless the file already
  holds that timestamp (:mod:`pvsimd.day_file`: repeats, repair);
* :meth:`DayFiles.write` writes every buffered row, one ``write`` per file, through the
  descriptors of :mod:`pvsimd.open_files`; :meth:`DayFiles.append_to_journal` instead
  appends the rows buffered since the last commit to the journal (:mod:`pvsimd.journal`),
  keeping them buffered for their day files;
* :meth:`DayFiles.sync` makes them durable; until then :mod:`pvsimd.commit_log` keeps
  what each write did, so that a failed sync is rolled back
  (:meth:`DayFiles.roll_back_unsynced`) and the rows are written again.

``fsync = batch`` (the default): one ``syncfs(2)`` per commit for all the files written
(see :mod:`pvsim.durable`), or only the journal's ``fdatasync`` when no day file was
written since the last sync; ``fsync = file``: ``fsync(2)`` each written file and the
directory of each new one as it is written (for a filesystem shared with heavy writers);
``fsync = off``: leave it to the kernel.  Where the C library has no ``syncfs``,
``batch`` falls back to ``file``.

A *shared* output directory (``shared``: sharded pvsimd and their standbys all write
one directory) keeps those guarantees among several writers: each file is examined,
written and cut back under its lock, and a write first catches up with rows other
pvsimd appended (:meth:`pvsimd.day_file.DayFile.catch_up`), dropping buffered rows that
are now repeats (:attr:`DayFiles.late_repeats`).  That costs a ``flock``, an ``fstat``
and an unlock per file per commit, nothing per reading.  The journal then lives in a
directory of the shard's own (``journal_directory``).

Guarantees: the header exactly once per file, also after a restart or a crash; no torn
line survives; one row per reading (meter_id, timestamp); at most ``max_open``
descriptors on day files.

Cost per reading: one dictionary lookup for the file and a formatted row appended to a
list (the time texts come with the reading's :class:`~pvsimd.moments.Moment`).  Per
commit: one ``write`` per file touched (plus an ``open`` and ``close`` when its
descriptor was not kept) and one ``syncfs``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pvsim import durable, wire
from pvsimd import csv_format
from pvsimd.commit_log import CommitLog
from pvsimd.day_file import DayFile, locked
from pvsimd.journal import Journal
from pvsimd.moments import Moment
from pvsimd.open_files import OpenFiles

log = logging.getLogger("pvsimd.files")

FSYNC_MODES = ("batch", "file", "off")  # [output] fsync


class DayFiles:
    """All day files under one directory; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        *,
        fsync: str = "batch",
        max_open: int = 256,
        journal: bool = False,
        shared: bool = False,
        journal_directory: Path | None = None,
    ):
        self.directory = Path(directory)
        self.shared = shared
        self.late_repeats = 0  # shared: buffered rows another pvsimd had written meanwhile
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {FSYNC_MODES}, not {fsync!r}")
        if fsync == "batch" and not durable.syncfs_available():
            log.warning("syncfs is not available here; fsync = batch syncs file by file")
            fsync = "file"
        self.fsync: str = fsync
        self._dir = str(self.directory)
        self._dir_fd: int | None = None
        self._new_dirs: list[str] = []  # created since the last sync (fsync = file)
        self.open_files = OpenFiles(
            self._dir, max_open, on_new_directory=self._new_directory, shared=shared
        )
        self._dirty: list[DayFile] = []  # files with buffered rows
        self.commit_log = CommitLog()  # fsync = batch: writes not yet known durable
        # the backlog journal (fsync = batch only), and the rows buffered since the last
        # commit (what the next append takes)
        journal_dir = str(journal_directory) if journal_directory is not None else self._dir
        self.journal = Journal(journal_dir) if journal and fsync == "batch" else None
        self._fresh: list[str] = []
        self._format_row = csv_format.format_row  # bound once: this runs for every reading

    @property
    def max_open(self) -> int:
        return self.open_files.max_open

    @property
    def open_count(self) -> int:
        """Descriptors open on day files (at most ``max_open``)."""
        return self.open_files.open_count

    # --- buffering -------------------------------------------------------------------

    def buffer(self, meter_id: str, moment: Moment, meter_w: float, seq: int | None) -> bool:
        """Buffer a reading's row; False when its file already holds that timestamp.
        OSError when the file cannot be opened or read."""
        day = moment.day
        f = self._file_for(meter_id, day, moment.epoch_us)
        if f is None:
            return False
        row = self._format_row(moment.local, meter_id, meter_w, moment.pv_w, seq)
        f.rows.append(row)
        if self.journal is not None:
            self._fresh.append(row)
        return True

    def _file_for(self, meter_id: str, day: str, ts_us: int) -> DayFile | None:
        """The day file a row at ``ts_us`` goes to, marked dirty; None for a repeat."""
        f, _new = self.open_files.get(meter_id, day)
        newest = f.newest_us
        if newest is not None and ts_us <= newest and f.seen is None and f.has_rows_on_disk:
            self.open_files.lend(f)  # the repeat check reads the file's timestamps
        if not f.add(ts_us):
            return None
        if not f.rows:
            self._dirty.append(f)
        return f

    def discard_buffered(self) -> None:
        """Forget buffered rows (their messages go back to the broker unacknowledged);
        those files are examined afresh when next written to.  Nothing is forgotten while
        the journal holds rows: they are buffered too, and the next write takes them all
        (the repeat check then drops the redelivered ones)."""
        if self.journal_holds_rows:
            return
        self._fresh = []
        for f in self._dirty:
            self.open_files.forget(f)
        self._dirty = []

    # --- writing ---------------------------------------------------------------------

    def write(self) -> int:
        """Write every buffered row, without making it durable (``fsync = batch``: see
        :meth:`sync`); returns this write's generation, for :meth:`mark_synced`.

        A file whose write fails is rolled back to its last complete row and keeps its
        buffered rows; the other files are written, and then OSError is raised.
        """
        dirty, self._dirty = self._dirty, []
        self._fresh = []  # written, or left buffered for the next write
        written: list[tuple[DayFile, int, list[str]]] = []
        failed: OSError | None = None
        fsync_file = self.fsync == "file"
        for f in dirty:
            try:
                self.open_files.lend(f)
                if self.shared:
                    with locked(f.fd):
                        self.late_repeats += f.catch_up()
                        if not f.rows:
                            continue  # every row was written by another pvsimd meanwhile
                        before, rows = f.write()
                else:
                    before, rows = f.write()
                if fsync_file:
                    self._fsync_file(f, before, rows)
            except OSError as exc:
                failed = failed or exc
                self._dirty.append(f)
                continue
            written.append((f, before, rows))
        generation = self.commit_log.next_generation()
        if self.fsync == "batch":
            self.commit_log.written(generation, written)
        if failed is not None:
            raise failed
        if self.journal is not None:
            self.journal.checkpoints.wrote_everything(generation)
        return generation

    def append_to_journal(self, now: float) -> int:
        """Append the rows buffered since the last commit to the journal, without making
        them durable (see :meth:`sync`); they stay buffered for the next write.  Returns
        this append's generation; OSError when appending failed."""
        generation = self.commit_log.next_generation()
        if self._fresh:  # (a batch of repeats and dead letters appends nothing)
            self.journal.append("".join(self._fresh).encode(), generation, now)
            self._fresh = []
        return generation

    def force_checkpoint(self) -> None:
        """A write or sync failed, or the connection was lost: the next commit writes the
        day files (rule 3 of :mod:`pvsimd.journal`)."""
        if self.journal is not None:
            self.journal.checkpoints.failed()

    def checkpoint_due(self, now: float) -> bool:
        """The next backlog commit should write the day files, not append to the journal
        (always so without a journal)."""
        return self.journal is None or self.journal.checkpoints.due(now)

    @property
    def journal_holds_rows(self) -> bool:
        """Rows in the journal that a checkpoint has not yet made durable in their files."""
        return self.journal is not None and self.journal.holds_rows

    def write_and_sync(self) -> None:
        """Write every buffered row and make it durable; raises OSError on failure.

        A file whose write fails is rolled back to its last complete row and keeps its
        buffered rows, so a later call writes them again; the other files are written.
        When making them durable fails, every file written since the last successful
        sync is rolled back and keeps its rows buffered.
        """
        failed: OSError | None = None
        try:
            generation = self.write()
        except OSError as exc:
            failed = exc
            generation = self.commit_log.generation
        if self.commit_log.unsynced:
            try:
                self.sync()
            except OSError:
                self.roll_back_unsynced()
                raise
            self.mark_synced(generation)
        if failed is not None:
            raise failed

    # --- making it durable -------------------------------------------------------------

    def sync_target(self) -> int:
        """The descriptor :func:`durable.syncfs` takes (the output directory), opened in
        the calling thread; it stays open until :meth:`close`."""
        if self._dir_fd is None:
            self._dir_fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._dir_fd

    def sync(self) -> None:
        """Make everything written and appended so far durable (``fsync = batch``): one
        ``syncfs``, or only the journal's ``fdatasync`` when no day file was written
        since the last sync.  OSError on failure.  Safe to call from another thread once
        :meth:`sync_target` was called."""
        journal = self.journal
        if journal is not None and not self.commit_log.unsynced and journal.fd is not None:
            journal.sync()
        else:
            durable.syncfs(self.sync_target())

    @property
    def unsynced(self) -> bool:
        """Rows written but not yet known to be durable (``fsync = batch``)."""
        return self.commit_log.unsynced

    def mark_synced(self, generation: int) -> None:
        """A sync that began after :meth:`write` or :meth:`append_to_journal` returned
        ``generation`` succeeded."""
        self.commit_log.synced(generation)
        if self.journal is not None:
            self.journal.synced(generation)

    def roll_back_unsynced(self) -> None:
        """A sync failed: cut every file written since the last successful sync back to
        its size then, and buffer those rows again (before any newer ones)."""
        if self.journal is not None:
            self.journal.checkpoints.rolled_back()
        if not self.commit_log.unsynced:
            return
        log.error(
            "syncing %s failed: rolling back %d writes not known to be durable",
            self._dir,
            self.commit_log.unsynced_writes,
        )
        for f, before, rows in self.commit_log.roll_back():
            if not self.open_files.is_current(f):
                continue  # forgotten (discard_buffered): examined afresh when next used
            try:
                self.open_files.lend(f, check=False)
            except OSError:
                f.suspect = True
                f.size = before
            else:
                if self.shared:
                    self._roll_back_shared(f, before, rows)
                else:
                    f.rollback(before)
            if not f.rows:
                self._dirty.append(f)
            f.rows[:0] = rows

    def _roll_back_shared(self, f: DayFile, before: int, rows: list[str]) -> None:
        """Cut ``f`` back under its lock, but only when nobody appended after our rows;
        otherwise they stay where they are (cutting would take another pvsimd's rows
        too) and the file is examined again at the next write, which finds them there
        and drops them as repeats."""
        end = before + len("".join(rows).encode()) + (
            len(csv_format.HEADER_TEXT.encode()) if before == 0 else 0
        )
        with locked(f.fd):
            if os.fstat(f.fd).st_size == end:
                f.rollback(before)
            else:
                log.error(
                    "%s: another pvsimd appended after rows whose sync failed; they stay "
                    "in the file",
                    f.path,
                )
                f.suspect = True

    def let_go_of_journal(self) -> None:
        """Shared output, when this pvsimd stops being its shard's active one: write every
        buffered row, make everything durable, empty the journal and close it (the next
        active one opens it afresh).  OSError on failure (then nothing is let go)."""
        self.write_and_sync()
        if self.journal is not None:
            if self.journal.holds_rows:  # written and synced before, not yet emptied
                durable.syncfs(self.sync_target())
                self.journal.empty()
            self.journal.close()

    def _new_directory(self, _path: str) -> None:
        if self.fsync == "file":
            self._new_dirs.append(self._dir)  # the new meter directory's entry is here

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

    # --- the journal at start ------------------------------------------------------------

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
                meter_id, local = csv_format.row_key(line)
            except ValueError:
                log.warning("%s: skipped a line that is not a row: %r", journal.path, line[:80])
                continue
            f = self._file_for(meter_id, local.date().isoformat(), wire.to_epoch_us(local))
            if f is None:
                repeats += 1
            else:
                f.rows.append(line)
                added += 1
        self.write_and_sync()
        durable.syncfs(self.sync_target())  # also what an earlier run wrote, unsynced
        journal.empty()
        return added, repeats

    def close(self) -> None:
        try:
            self.write_and_sync()
        finally:
            self.open_files.close_all()
            if self.journal is not None:
                self.journal.close()
            if self._dir_fd is not None:
                os.close(self._dir_fd)
                self._dir_fd = None
