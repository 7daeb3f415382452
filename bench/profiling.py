"""Reading py-spy's collapsed stacks (``--format raw --nolineno``): the functions with the
most samples of their own ("self") and on the stack at all ("total"), in percent of all
samples.

    python -m bench.profiling FILE [--top 25] [--grep pvsimd]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*)\)$")
IDLE = ("select", "poll", "epoll", "wait", "sleep", "_poll", "process_timeouts")


def short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    func, file = m.group("func"), m.group("file")
    for marker in ("/site-packages/", "/dist-packages/", "/lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    else:
        for pkg in ("/pvsimd/", "/meterd/", "/pvsim/"):
            if pkg in file:
                file = pkg[1:] + file.split(pkg, 1)[1]
                break
    return f"{func} ({file})"


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        frames, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        stacks.append(([short(f) for f in frames.split(";")], n))
    return stacks


def summarize(path: Path, top: int = 25) -> dict[str, object]:
    stacks = load(path)
    total = sum(n for _, n in stacks)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        if not frames:
            continue
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    pct = (lambda n: 100.0 * n / total) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "self": [(f, pct(n)) for f, n in own.most_common(top)],
        "total": [(f, pct(n)) for f, n in inclusive.most_common(top * 3)],
    }


def report(path: Path, top: int = 25, grep: str | None = None) -> str:
    s = summarize(path, top)
    lines = [f"{path.name}: {s['samples']} samples"]
    lines.append("  self %   function")
    lines.extend(f"  {p:6.1f}   {f}" for f, p in s["self"])
    lines.append("  total %  function (on the stack)")
    shown = 0
    for f, p in s["total"]:
        if grep and grep not in f:
            continue
        lines.append(f"  {p:6.1f}   {f}")
        shown += 1
        if shown >= top:
            break
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--grep", help="only functions whose name or file contains this (total)")
    a = ap.parse_args()
    print(report(a.file, a.top, a.grep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
