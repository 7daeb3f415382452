"""The commit log of the day files: what was written but is not yet known to be durable.

With ``fsync = batch`` a write and its sync are apart: the I/O loop writes the buffered
rows (one *generation* per write or journal append) and a thread makes them durable
later.  The log remembers, per generation, which files were written from which size with
which rows, until a sync that began after that generation succeeds
(:meth:`CommitLog.synced`).  When a sync fails, everything written since the last good
sync may be lost, so :meth:`CommitLog.roll_back` hands back, per file, the size to cut it
back to and every row written since, oldest first, to be buffered again.

No I/O here: the day files do the cutting and the re-buffering.
"""

from __future__ import annotations

from collections import deque
from typing import TypeVar

F = TypeVar("F")

# one file's part of a write: (the file, its size before, the rows written)
Written = tuple[F, int, list[str]]


class CommitLog:
    """Generations of writes not yet known durable, oldest first."""

    def __init__(self) -> None:
        self.generation = 0  # the newest generation handed out
        self._unsynced: deque[tuple[int, list[Written]]] = deque()

    def next_generation(self) -> int:
        self.generation += 1
        return self.generation

    def written(self, generation: int, written: list[Written]) -> None:
        """The files ``written`` in ``generation`` await a sync."""
        if written:
            self._unsynced.append((generation, written))

    @property
    def unsynced(self) -> bool:
        """Rows written but not yet known to be durable."""
        return bool(self._unsynced)

    @property
    def unsynced_writes(self) -> int:
        return sum(len(written) for _g, written in self._unsynced)

    def synced(self, generation: int) -> None:
        """A sync that began after ``generation`` was handed out succeeded."""
        while self._unsynced and self._unsynced[0][0] <= generation:
            self._unsynced.popleft()

    def roll_back(self) -> list[Written]:
        """A sync failed: per file, the size before its oldest unsynced write and all its
        unsynced rows, oldest first.  The log is empty afterwards."""
        first: dict[int, tuple[F, int, list[str]]] = {}
        for _generation, written in self._unsynced:
            for f, before, rows in written:
                entry = first.get(id(f))
                if entry is None:
                    first[id(f)] = (f, before, list(rows))
                else:
                    entry[2].extend(rows)
        self._unsynced.clear()
        return list(first.values())
