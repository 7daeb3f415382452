"""One writer per directory: an exclusive lock on a directory that names its holder.

A daemon that must be the only writer of a directory (meterd: its meter's state and
spool; pvsimd: its output directory and journal) takes :class:`DirectoryLock` before
it touches anything there and keeps it until it exits.  A second daemon for the same
directory cannot take it and refuses to start with :class:`DirectoryInUse`, which
names the directory and the holder's pid.

The lock is ``flock(2)`` (exclusive, non-blocking) on the file ``.lock`` in the
directory — a name no meter id can take (ids start with a letter, digit, ``-`` or
``_``).  The kernel releases it when the holding process ends, however it ends (a
crash, SIGKILL, the OOM killer), so there is no stale lock to clean up after a crash:
the file may stay, but a file nobody holds a lock on does not count.  The holder
writes its pid into the file after taking the lock, for the message only (when that
write fails, on a full disk say, it holds the lock all the same).

A *shared* lock (``shared=True``, ``flock`` LOCK_SH) is for daemons that may write a
directory together (pvsimd's shards, which lock each file they write): any number of
them hold it at once, and it keeps out a daemon that wants the directory for itself
(and is kept out by one); the last of them to start names itself in the file.  ``flock``
locks work across the namespaces of systemd's sandboxing, but not over NFS in general:
the directories are local ones.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path

LOCK_NAME = ".lock"

#: how long a failed attempt waits for the holder to write its pid (it takes the lock
#: first, then writes the pid: a moment in between)
PID_WAIT_S = 1.0


class DirectoryInUse(Exception):
    """The directory's lock is held by another process."""

    def __init__(self, directory: Path, pid: int | None, holder: str):
        self.directory = directory
        self.pid = pid
        who = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"{directory} is in use by {who}, {holder} (it holds {directory / LOCK_NAME}); "
            "stop that one first"
        )


class DirectoryLock:
    """An exclusive (or ``shared``) ``flock`` on ``<directory>/.lock``, held until
    :meth:`release`.

    ``holder`` says who else would hold it, for the message ("another pvsimd")."""

    def __init__(self, directory: Path, holder: str, shared: bool = False):
        self.directory = Path(directory)
        self.holder = holder
        self.shared = shared
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (the directory must exist); DirectoryInUse when another process
        holds it, OSError when the lock file cannot be opened."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DirectoryInUse(self.directory, self._holder_pid(), self.holder) from None
            raise
        # The pid is for the message only: a full disk must not stop the daemon from
        # starting (overwriting the last holder's pid in place needs no new block).
        pid = f"{os.getpid()}\n".encode()
        try:
            os.pwrite(fd, pid, 0)
            os.ftruncate(fd, len(pid))
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # no pid rather than an earlier holder's
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (closing the file releases it); the file stays."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _holder_pid(self) -> int | None:
        """The pid the holder wrote, waiting a moment for one that has just locked."""
        deadline = time.monotonic() + PID_WAIT_S
        while True:
            with contextlib.suppress(OSError, ValueError):
                return int(self.path.read_text().strip())
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
