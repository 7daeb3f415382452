"""What `scripts/demo` prints of `pvsimd report`, as the demo tests read it (from the
clone: tests/scripts/test_demo.py; on a fresh Debian 12: tests/system/test_newcomer.py)."""

from __future__ import annotations

from pvsimd.report import COLUMNS

#: the demo's three meters (scripts/demo)
HOUSES = ("house-a", "house-b", "house-c")


def report_table(text: str) -> dict[str, dict[str, str]]:
    """The report's lines, by house, as {column: value}."""
    table = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) == len(COLUMNS) and cells[0] in HOUSES:
            table[cells[0]] = dict(zip(COLUMNS, cells, strict=True))
    return table
