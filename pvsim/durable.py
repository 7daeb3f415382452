"""Making written data durable: the calls both daemons share.

* :func:`fsync_directory` makes a directory's entries durable (a file created, renamed or
  removed in it): meterd's spool after a new segment or watermark, pvsimd's day files
  with ``fsync = file``.
* :func:`syncfs` writes back a whole filesystem in one journal commit: pvsimd's day files
  with ``fsync = batch``, one call per flush however many files it wrote (about a tenth
  of an ``fsync`` per file on a disk of hundreds of day files, see docs/performance.md).
  It also writes back other programs' dirty data on that filesystem.  It is called
  through ctypes (Python has no ``os.syncfs``); :func:`syncfs_available` says whether
  the C library has it.
"""

from __future__ import annotations

import os


def _load_syncfs():  # -> Callable[[int], int] | None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (ImportError, OSError, AttributeError, MemoryError):
        return None
    syncfs.argtypes = [ctypes.c_int]
    syncfs.restype = ctypes.c_int

    def call(fd: int) -> int:
        if syncfs(fd) != 0:
            return ctypes.get_errno() or 5  # EIO when the C library did not say
        return 0

    return call


_syncfs = _load_syncfs()


def syncfs_available() -> bool:
    return _syncfs is not None


def syncfs(fd: int) -> None:
    """Write back the whole filesystem holding ``fd``; raises OSError on failure."""
    if _syncfs is None:
        raise OSError(38, "syncfs is not available")  # ENOSYS
    err = _syncfs(fd)
    if err:
        raise OSError(err, os.strerror(err))


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Make a directory's entries durable (a file created or renamed in it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
