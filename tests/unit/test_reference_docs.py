"""The README and the shipped configs document every key the daemons accept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meterd.settings import SCHEMA as METERD
from pvsim import config as c
from pvsimd.settings import SCHEMA as PVSIMD

REPO = Path(__file__).resolve().parents[2]
DAEMONS = {"meterd": METERD, "pvsimd": PVSIMD}


def _readme_table(daemon: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"#### {daemon}\n")
    end = text.index("\n#", start + 10)
    return text[start:end]


@pytest.mark.parametrize("daemon", DAEMONS)
def test_readme_lists_every_key_with_its_default(daemon):
    table = _readme_table(daemon)
    rows = re.findall(r"^\| `\[(\w+)\]` \| `(\w+)` \| ([^|]+) \|", table, re.M)
    documented = {(s, k): d.strip() for s, k, d in rows}
    for section, key, option in c.describe(DAEMONS[daemon]):
        assert (section, key) in documented, f"README lacks [{section}] {key}"
        want = "*(required)*" if option.required else (f"`{option.default}`" or "")
        if option.default == "":
            want = "*(empty)*"
        assert documented[(section, key)] == want, f"README default of [{section}] {key}"
    assert len(documented) == sum(len(v) for v in DAEMONS[daemon].values())


@pytest.mark.parametrize("daemon", DAEMONS)
def test_reference_config_sets_every_key_after_a_comment(daemon):
    path = REPO / "etc" / daemon / f"{daemon}.ini"
    lines = path.read_text().splitlines()
    section = None
    seen = set()
    for i, line in enumerate(lines):
        if m := re.fullmatch(r"\[(\w+)\]", line):
            section = m.group(1)
        elif m := re.match(r"(\w+) =", line):
            where = f"{path.name}: [{section}] {m.group(1)}"
            assert lines[i - 1].startswith("#"), f"{where} has no comment"
            seen.add((section, m.group(1)))
    expected = {(s, k) for s, k, _ in c.describe(DAEMONS[daemon])}
    assert seen == expected
    c.load(path, DAEMONS[daemon])  # and it is valid
