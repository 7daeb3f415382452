"""The open-file cache of the day files: which files pvsimd remembers, and which of them
hold a descriptor.

Two bounds, both least recently used first:

* at most ``max_open`` descriptors (the unit's ``LimitNOFILE=`` leaves room).  What a
  file needs between writes (size, newest timestamp, buffered rows) lives in its
  :class:`~pvsimd.day_file.DayFile` apart from the descriptor, so a descriptor can be
  closed at any time and the file reopened with a single ``open``; a reopened file's
  size is checked, and a file changed by someone else is examined again;
* at most ``max_known`` remembered files (about 250 bytes each): beyond that the least
  recently used files with nothing buffered are forgotten, and examined afresh (one
  read of the file) when next used.

With a shared output directory (``shared``) a file is examined under its lock, and a
reopened file that changed is no surprise: the write that follows catches up with it
(:meth:`~pvsimd.day_file.DayFile.catch_up`).
"""

from __future__ import annotations

import logging
import os
import resource
from collections import OrderedDict
from collections.abc import Callable

from pvsimd.day_file import DayFile, locked

log = logging.getLogger("pvsimd.files")

MAX_KNOWN = 65536  # files whose state is remembered (about 250 bytes each)
DESCRIPTOR_RESERVE = 64  # for the broker connection, the journal, the config and Python


def descriptor_budget(max_open_files: int) -> int:
    """``max_open_files``, after raising the soft descriptor limit towards the hard one
    where needed; lowered (with a WARNING) when it still does not fit."""
    need = max_open_files + DESCRIPTOR_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or need <= soft:
        return max_open_files
    try:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    except (OSError, ValueError):  # e.g. setrlimit filtered by the unit's SystemCallFilter=
        pass
    if need <= soft:
        return max_open_files
    budget = max(16, soft - DESCRIPTOR_RESERVE)
    log.warning(
        "max_open_files = %d does not fit the descriptor limit %d; using %d "
        "(raise LimitNOFILE= with systemctl edit pvsimd)",
        max_open_files,
        soft,
        budget,
    )
    return budget


class OpenFiles:
    """Day files by (meter_id, day), with at most ``max_open`` descriptors."""

    def __init__(
        self,
        directory: str,
        max_open: int,
        on_new_directory: Callable[[str], None] = lambda _path: None,
        shared: bool = False,
    ):
        self.directory = directory
        self.shared = shared
        self.max_open = max(1, max_open)
        self.max_known = MAX_KNOWN
        self._on_new_directory = on_new_directory
        self._files: OrderedDict[tuple[str, str], DayFile] = OrderedDict()
        self._fds: OrderedDict[tuple[str, str], DayFile] = OrderedDict()  # LRU of open ones

    def get(self, meter_id: str, day: str) -> tuple[DayFile, bool]:
        """The day file (examined when first used) and whether it is new to the cache;
        OSError when it cannot be opened or read."""
        key = (meter_id, day)
        f = self._files.get(key)
        if f is not None:
            self._files.move_to_end(key)
            return f, False
        f = DayFile(key, f"{self.directory}/{meter_id}/{day}.csv")
        self._open(f)
        try:
            if self.shared:
                with locked(f.fd):
                    f.examine()
            else:
                f.examine()
        except OSError:
            self._close(f)
            raise
        self._files[key] = f
        if len(self._files) > self.max_known:
            self._shrink()
        return f, True

    def is_current(self, f: DayFile) -> bool:
        """False for a file that was forgotten since (it is examined afresh when used)."""
        return self._files.get(f.key) is f

    def lend(self, f: DayFile, check: bool = True) -> None:
        """Make sure ``f`` has a descriptor; with ``check``, that the file is as we left it."""
        if f.fd is not None:
            self._fds.move_to_end(f.key)
            return
        self._open(f)
        if f.suspect or not check or self.shared:
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
            self._on_new_directory(parent)
            f.fd = os.open(f.path, flags, 0o640)
        self._fds[f.key] = f

    def _close(self, f: DayFile) -> None:
        if f.fd is not None:
            self._fds.pop(f.key, None)
            os.close(f.fd)
            f.fd = None

    def forget(self, f: DayFile) -> None:
        """Drop ``f`` from the cache (closing its descriptor)."""
        if self._files.get(f.key) is f:
            del self._files[f.key]
        self._close(f)

    def _shrink(self) -> None:
        """Forget the least recently used files that have nothing buffered."""
        excess = len(self._files) - self.max_known
        victims = []
        for f in self._files.values():
            if len(victims) >= excess:
                break
            if not f.rows:
                victims.append(f)
        for f in victims:
            self.forget(f)

    @property
    def open_count(self) -> int:
        """Descriptors open on day files (at most ``max_open``)."""
        return len(self._fds)

    def close_all(self) -> None:
        for f in self._fds.values():
            os.close(f.fd)
            f.fd = None
        self._fds.clear()
