"""The backlog journal: rows made durable in one file before they reach their day files.

Working through a backlog, pvsimd commits every ``prefetch / 4`` deliveries, and those
rows go to as many different day files (one meter after another).  Writing each into its
own file costs one kernel ``write`` per reading and a ``syncfs`` over all of them.  With
``fsync = batch`` such a commit instead appends the batch's rows to one file,
``<directory>/.journal``, syncs that one file (``fdatasync``) and acknowledges; the rows
stay buffered and reach their day files at the next *checkpoint*, a few readings per file
in one ``write``.  A checkpoint is an ordinary commit (write every buffered row, one
``syncfs``): the flush interval's, or one forced after :data:`CHECKPOINT_ROWS` rows or
:data:`CHECKPOINT_S` seconds of journaling.  Once a checkpoint that came after the last
append is synced, the journal is emptied.

The journal holds finished CSV rows, one per line.  At start, rows left in it (pvsimd
stopped between an acknowledgement and the next checkpoint) are written to their day
files before anything is consumed; the repeat check drops the rows already there, so a
replay never doubles a row.  A torn last line (a crash mid-append) is ignored: its
readings were not acknowledged and come back from the broker.
"""

from __future__ import annotations

import logging
import os

from pvsim import durable

log = logging.getLogger("pvsimd.files")

NAME = ".journal"  # meter ids cannot start with "."
CHECKPOINT_ROWS = 65536  # about 6 MB of rows buffered in memory at most
CHECKPOINT_S = 5.0  # how late a journaled row reaches its day file at most


class Journal:
    """One append-only file of CSV rows; emptied after each checkpoint."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, NAME)
        self.fd: int | None = None
        self.size = 0
        self.rows = 0  # rows appended since it was last emptied
        self.first_append = 0.0  # time.monotonic() of the first of them

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

    def append(self, data: bytes, now: float) -> None:
        """Append rows; on failure the file is cut back to its size before, and OSError
        is raised."""
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
        if not self.rows:
            self.first_append = now
        self.rows += data.count(b"\n")

    def sync(self) -> None:
        """Make the appended rows durable; OSError on failure (any thread)."""
        os.fdatasync(self.fd)

    def empty(self) -> None:
        """Forget every row: they are all durable in their day files.  Not synced: rows
        that come back after a crash are dropped as repeats."""
        if self.size:
            os.ftruncate(self.fd, 0)
        self.size = 0
        self.rows = 0

    def due(self, now: float) -> bool:
        """A checkpoint should come instead of the next append."""
        return self.rows >= CHECKPOINT_ROWS or (
            self.rows > 0 and now - self.first_append >= CHECKPOINT_S
        )

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
