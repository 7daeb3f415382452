"""How to make appended rows durable, per row, on this disk: a micro-benchmark for the
flush of pvsimd's day files (not a daemon benchmark).

F open files each get one row per batch (as a flush of F meters' readings does), then
are made durable by one of these strategies; the wall-clock time per row is printed:

* ``per-file``         write + fsync file by file (what DayFiles.flush does today)
* ``write-all-fsync``  write every file first, then fsync each
* ``fdatasync``        write every file first, then fdatasync each
* ``threads-N``        write every file first, then fsync them from N threads
* ``syncfs``           write every file first, then one syncfs() of the filesystem
* ``none``             write only (fsync = off)
* ``reopen``           open, write, close per row, no sync (max_open_files smaller than
                       the meters: every row reopens its file)

    python -m bench.fsync_strategies [--dir DIR] [--files 500] [--batches 20]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROW = b"2025-06-21T10:00:00+02:00,bench-m00000,1234.5,2345.6,3580.1,17\n"


def run(strategy: str, directory: Path, files: int, batches: int) -> float:
    d = Path(tempfile.mkdtemp(dir=directory, prefix="fsync-"))
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    paths = [d / f"m{i:05d}.csv" for i in range(files)]
    fds = [os.open(p, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640) for p in paths]
    for fd in fds:
        os.write(fd, ROW)
        os.fsync(fd)
    pool = None
    if strategy.startswith("threads-"):
        pool = ThreadPoolExecutor(int(strategy.split("-")[1]))
    try:
        t0 = time.perf_counter()
        for _ in range(batches):
            if strategy == "per-file":
                for fd in fds:
                    os.write(fd, ROW)
                    os.fsync(fd)
                continue
            if strategy == "reopen":
                for p in paths:
                    fd = os.open(p, os.O_RDWR | os.O_APPEND)
                    os.write(fd, ROW)
                    os.close(fd)
                continue
            for fd in fds:
                os.write(fd, ROW)
            if strategy == "write-all-fsync":
                for fd in fds:
                    os.fsync(fd)
            elif strategy == "fdatasync":
                for fd in fds:
                    os.fdatasync(fd)
            elif pool is not None:
                list(pool.map(os.fsync, fds))
            elif strategy == "syncfs":
                if libc.syncfs(fds[0]) != 0:
                    raise OSError(ctypes.get_errno(), "syncfs")
        return (time.perf_counter() - t0) / (files * batches) * 1e6
    finally:
        if pool is not None:
            pool.shutdown()
        for fd in fds:
            os.close(fd)
        shutil.rmtree(d, ignore_errors=True)


STRATEGIES = (
    "per-file",
    "write-all-fsync",
    "fdatasync",
    "threads-8",
    "threads-32",
    "syncfs",
    "none",
    "reopen",
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"{a.files} files, {a.batches} batches, median of {a.repeat}, under {a.dir}")
    print(f"load {os.getloadavg()[0]:.1f}")
    for s in STRATEGIES:
        times = [run(s, a.dir, a.files, a.batches) for _ in range(a.repeat)]
        print(
            f"  {s:16s} {statistics.median(times):8.1f} µs per row   "
            f"({', '.join(f'{t:.1f}' for t in times)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
