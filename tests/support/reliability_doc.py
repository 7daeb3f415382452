"""docs/reliability.md, written by two tiers: each replaces its own section only.

The file has a fixed introduction and one section per tier (``tests/fault``,
``tests/cluster``) between HTML comments that mark where it begins and ends; a tier
that ran completely rewrites its section and leaves the other's as it is.  A missing
file or section is created.
"""

from __future__ import annotations

from pathlib import Path

INTRODUCTION = """# Reliability

The promise: **every reading that meterd samples ends up in exactly one CSV row, whatever
happens in between.** Two test tiers break the path between the daemons on purpose and
check the promise after every run: `tests/fault/` against one RabbitMQ node of its own
behind a TCP proxy (broker kills and outages, cut and stalled connections, daemons
SIGKILLed, a full disk, an overflowing spool), and `tests/cluster/` against a
three-node RabbitMQ cluster of its own with two shards of pvsimd, each with a hot
standby (node kills, pvsimd kills, stopped nodes, a rolling restart, a shard added).

Each tier writes its own section of this file at the end of every run of the whole tier
(between the markers); do not edit inside them by hand.
"""

ORDER = ("tests/fault", "tests/cluster")


def _markers(tier: str) -> tuple[str, str]:
    return f"<!-- {tier}: begin (written by the tier) -->", f"<!-- {tier}: end -->"


def write_section(path: Path, tier: str, body: str) -> None:
    """Replace ``tier``'s section of ``path`` with ``body`` (markdown)."""
    text = path.read_text() if path.exists() else INTRODUCTION
    sections = {}
    for name in ORDER:
        begin, end = _markers(name)
        if begin in text and end in text:
            start = text.index(begin)
            stop = text.index(end) + len(end)
            sections[name] = text[start:stop]
            text = text[:start].rstrip("\n") + "\n" + text[stop:].lstrip("\n")
    begin, end = _markers(tier)
    sections[tier] = f"{begin}\n{body.strip()}\n{end}"
    intro = text.strip() or INTRODUCTION.strip()
    parts = [intro] + [sections[name] for name in ORDER if name in sections]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(parts) + "\n")
