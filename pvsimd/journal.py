"""The backlog journal: rows made durable in one file before they reach their day files.

Working through a backlog, pvsimd commits every ``prefetch / 4`` deliveries, and those
rows go to as many different day files (one meter after another).  Writing each into its
own file costs one kernel ``write`` per reading and a ``syncfs`` over all of them.  With
``fsync = batch`` such a commit instead appends the batch's rows to one file,
``<directory>/.journal``, syncs that one file (``fdatasync``) and acknowledges; the rows
stay buffered and reach their day files at the next *checkpoint*, a few readings per file
in one ``write``.  A checkpoint is an ordinary commit (write every buffered row, one
``syncfs``): the flush interval's, or one forced after :data:`CHECKPOINT_ROWS` rows or
:data:`CHECKPOINT_S` seconds of journaling.

The ordering rules (kept by :class:`Checkpoints`, which does no I/O):

1. a journaled row is acknowledged once an ``fdatasync`` (or ``syncfs``) that began
   after its append succeeded; it stays buffered for its day file meanwhile;
2. the journal is emptied only once a write of *every* buffered row, made after its
   last append, is durable — never on an append's own sync, never after a write that
   failed or was rolled back;
3. after a failed write or sync, and after a lost broker connection, the next commit
   is a checkpoint (what failed goes to the day files, not to the journal again);
4. while the journal holds rows, buffered rows are never discarded (they are
   acknowledged; redeliveries are dropped as repeats by the day files).

The journal holds finished CSV rows (:mod:`pvsimd.csv_format`), one per line.  At start,
rows left in it (pvsimd stopped between an acknowledgement and the next checkpoint) are
written to their day files before anything is consumed; the repeat check drops the rows
already there, so a replay never doubles a row.  Only a row's first two columns (its
time and meter, which never change) are read at replay, so rows of an earlier version
with fewer columns are replayed as they are.  A torn last line (a crash mid-append) is
ignored: its readings were not acknowledged and come back from the broker.
"""

from __future__ import annotations

import logging
import os

from pvsim import durable

log = logging.getLogger("pvsimd.files")

NAME = ".journal"  # meter ids cannot start with "."
CHECKPOINT_ROWS = 65536  # about 6 MB of rows buffered in memory at most
CHECKPOINT_S = 5.0  # how late a journaled row reaches its day file at most


class Checkpoints:
    """When the next commit must be a checkpoint, and when the journal may be emptied
    (rules 1-3 of the module docstring).  Generations are those of the commit log."""

    def __init__(self) -> None:
        self.rows = 0  # rows appended since the journal was last emptied
        self.first_append = 0.0  # time.monotonic() of the first of them
        self.appended_gen = 0  # the last append
        self.written_gen = 0  # the last write of every buffered row (0: none since a failure)
        self.forced = False  # rule 3: the next commit is a checkpoint

    def due(self, now: float) -> bool:
        """A checkpoint should come instead of the next append."""
        return (
            self.forced
            or self.rows >= CHECKPOINT_ROWS
            or (self.rows > 0 and now - self.first_append >= CHECKPOINT_S)
        )

    def appended(self, generation: int, rows: int, now: float) -> None:
        if not self.rows:
            self.first_append = now
        self.rows += rows
        self.appended_gen = generation

    def wrote_everything(self, generation: int) -> None:
        """Every buffered row was written in ``generation`` (a checkpoint)."""
        self.written_gen = generation
        self.forced = False

    def failed(self) -> None:
        """A write or sync failed (or the connection was lost): the next commit is a
        checkpoint, and the journal waits for a write that comes after it."""
        self.forced = True

    def rolled_back(self) -> None:
        self.written_gen = 0
        self.forced = True

    def may_empty(self, synced_gen: int) -> bool:
        """Rule 2, after a sync of everything up to ``synced_gen`` succeeded."""
        return self.appended_gen < self.written_gen <= synced_gen

    def emptied(self) -> None:
        self.rows = 0


class Journal:
    """One append-only file of CSV rows; emptied after each checkpoint."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, NAME)
        self.fd: int | None = None
        self.size = 0
        self.checkpoints = Checkpoints()

    def open(self) -> None:
        """Open (or create, durably) the journal file."""
        if self.fd is not None:
            return
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        created = not os.path.exists(self.path)
        self.fd = os.open(self.path, flags, 0o640)
        self.size = os.fstat(self.fd).st_size
        if created:
            durable.fsync_directory(os.path.dirname(self.path))

    def read_rows(self) -> list[str]:
        """The complete rows left in the journal (a torn last line is left out)."""
        if not self.size:
            return []
        data = os.pread(self.fd, self.size, 0)
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("%s: ignoring a torn last line (%d bytes)", self.path, len(data) - end)
        return data[:end].decode(errors="replace").splitlines(keepends=True)

    def append(self, data: bytes, generation: int, now: float) -> None:
        """Append rows (as ``generation`` of the commit log); on failure the file is cut
        back to its size before, and OSError is raised."""
        if self.fd is None:
            self.open()
        before = self.size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:
            try:
                os.ftruncate(self.fd, before)
            except OSError:
                log.exception("%s: could not cut back a failed append", self.path)
            raise
        self.size = before + len(data)
        self.checkpoints.appended(generation, data.count(b"\n"), now)

    def sync(self) -> None:
        """Make the appended rows durable; OSError on failure (any thread)."""
        os.fdatasync(self.fd)

    @property
    def holds_rows(self) -> bool:
        """Rows in the journal that a checkpoint has not yet made durable in their files."""
        return self.size > 0

    def synced(self, generation: int) -> None:
        """A sync covering ``generation`` succeeded: empty the journal if rule 2 allows."""
        if self.size and self.checkpoints.may_empty(generation):
            try:
                self.empty()
            except OSError as exc:  # kept: replayed (as repeats) after a restart
                log.warning("%s: could not empty the journal: %s", self.path, exc)

    def empty(self) -> None:
        """Forget every row: they are all durable in their day files.  Not synced: rows
        that come back after a crash are dropped as repeats."""
        if self.size:
            os.ftruncate(self.fd, 0)
        self.size = 0
        self.checkpoints.emptied()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
