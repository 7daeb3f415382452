"""Which pvsimd is its shard's active one, in a shared output directory.

Sharded pvsimd (``[broker] shards`` > 1) and their standbys all write one output
directory.  The day files they share safely (per-file locks and catching up:
:mod:`pvsimd.day_files`); what one pvsimd must own alone is its shard's **journal**,
whose rows are acknowledged before they reach their day files.  So each shard has a
directory of its own (:func:`pvsimd.service.exclusive_directory`) holding the journal
and the one-writer lock of :mod:`pvsim.dirlock`; the pvsimd that holds it is the
shard's active one.

* A pvsimd does not claim its shard at start — a standby must start, connect and wait
  — but when its shard's first delivery comes (the broker's single active consumer is
  it now), before it processes anything; it then writes the rows a previous holder left
  in the journal to their day files, and goes on.
* When the claim is still held (the previous active pvsimd lives and has not let go
  yet), the deliveries wait, and the claim is tried again every tick.
* A pvsimd lets go when its broker session ends, once its journal is empty (every row
  written and synced to its day file), and when it stops.  The kernel frees the lock of
  one that dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from pvsim.dirlock import DirectoryLock


class ShardClaim:
    """The one-writer lock of one shard's directory; :attr:`held` while this pvsimd is
    the shard's active one."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.lock = DirectoryLock(self.directory, "the active pvsimd of this shard")

    @property
    def held(self) -> bool:
        return self.lock.held

    def acquire(self) -> None:
        """Claim the shard (creating its directory); DirectoryInUse when another pvsimd
        holds it, OSError when the directory or its lock file cannot be made."""
        if not self.held:
            self.directory.mkdir(mode=0o750, exist_ok=True)
        self.lock.acquire()

    def release(self) -> None:
        self.lock.release()

    def holder(self) -> int | None:
        """The pid of another pvsimd holding the claim now (0 when it wrote none), or
        None when nobody else does.  Tried without waiting (a shared lock taken and
        given back at once): for STATUS."""
        if self.held:
            return None
        try:
            fd = os.open(self.lock.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return None  # never claimed
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            with contextlib.suppress(OSError, ValueError):
                return int(os.pread(fd, 32, 0).decode().strip())
            return 0
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
