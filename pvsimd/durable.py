"""How written rows become durable before pvsimd acknowledges them.

``fsync = batch`` (the default): one ``syncfs(2)`` on the output directory's filesystem
per flush, however many files the flush wrote.  The kernel writes back every dirty file
and directory entry of that filesystem in one journal commit: on a disk shared by
hundreds of day files this costs about a tenth of an ``fsync`` per file (see
docs/performance.md).  It also writes back other programs' dirty data on the same
filesystem, so a flush may wait for them; ``fsync = file`` avoids that.

``fsync = file``: ``fsync(2)`` each written file, and the directory of each new file.

``fsync = off``: leave it to the kernel (rows acknowledged may be lost on a power cut).

``syncfs`` is called through ctypes (Python has no ``os.syncfs``); where the C library
lacks it, ``batch`` falls back to ``file``.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("pvsimd.files")

MODES = ("batch", "file", "off")


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
