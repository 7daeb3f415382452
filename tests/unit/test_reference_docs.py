"""Every key is documented from its one definition (meterd/settings.py,
pvsimd/settings.py): the README's tables are exactly the rows the definitions give
(section, key, default, meaning); the shipped configs set every key after a comment, to
its default unless the comment names the default; the man pages describe every key in
its section with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meterd.settings import SCHEMA as METERD
from pvsim import config as c
from pvsimd.settings import SCHEMA as PVSIMD

REPO = Path(__file__).resolve().parents[2]
DAEMONS = {"meterd": METERD, "pvsimd": PVSIMD}


def default_cell(option: c.Option) -> str:
    if option.required:
        return "*(required)*"
    return f"`{option.default}`" if option.default else "*(empty)*"


def readme_rows(schema: c.Schema) -> list[str]:
    """The README table's rows, as the definitions give them."""
    return [
        f"| `[{section}]` | `{key}` | {default_cell(option)} | {option.doc} |"
        for section, key, option in c.describe(schema)
    ]


def _readme_table(daemon: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    start = text.index(f"#### {daemon}\n")
    end = text.index("\n#", start + 10)
    return [line for line in text[start:end].splitlines() if line.startswith("| `[")]


@pytest.mark.parametrize("daemon", DAEMONS)
def test_readme_table_is_what_the_definitions_give(daemon):
    want = readme_rows(DAEMONS[daemon])
    got = _readme_table(daemon)
    assert got == want, "README table of {}; expected:\n{}".format(daemon, "\n".join(want))


def test_every_key_has_a_meaning():
    for schema in DAEMONS.values():
        for section, key, option in c.describe(schema):
            assert option.doc, f"[{section}] {key} has no doc"


@pytest.mark.parametrize("daemon", DAEMONS)
def test_reference_config_sets_every_key_after_a_comment_to_its_default(daemon):
    path = REPO / "etc" / daemon / f"{daemon}.ini"
    lines = path.read_text().splitlines()
    options = {(s, k): o for s, k, o in c.describe(DAEMONS[daemon])}
    section = None
    seen = set()
    for i, line in enumerate(lines):
        if m := re.fullmatch(r"\[(\w+)\]", line):
            section = m.group(1)
        elif m := re.match(r"(\w+) =(.*)", line):
            key, value = m.group(1), m.group(2).strip()
            where = f"{path.name}: [{section}] {key}"
            assert lines[i - 1].startswith("#"), f"{where} has no comment"
            option = options[(section, key)]
            if not option.required and value != option.default:
                comment = []
                for before in reversed(lines[:i]):
                    if not before.startswith("#"):
                        break
                    comment.insert(0, before)
                assert f"default {option.default}" in " ".join(comment), (
                    f"{where} = {value!r} differs from the default {option.default!r}, "
                    "and its comment does not name the default"
                )
            seen.add((section, key))
    assert seen == set(options)
    c.load(path, DAEMONS[daemon])  # and it is valid


def _man_entries(daemon: str) -> dict[tuple[str, str], str]:
    """(section, key) -> the entry's text, groff markup taken out."""
    text = (REPO / "docs" / "man" / f"{daemon}.ini.5").read_text()
    entries: dict[tuple[str, str], str] = {}
    section = None
    current: list[str] | None = None
    for line in text.splitlines():
        if m := re.match(r"\.SH SECTION \[(\w+)\]", line):
            section, current = m.group(1), None
            continue
        if line.startswith((".SH", ".TP")):
            current = None
            continue
        if (m := re.fullmatch(r"\.B (\w+)", line)) and current is None and section:
            current = entries.setdefault((section, m.group(1)), [])
            continue
        if current is not None:
            plain = re.sub(r"^\.(BR|BI|IR|RB|B|I)\s+", "", line)
            plain = plain.replace('"', "").replace("\\-", "-").replace("\\(em", "—")
            current.append(plain)
    return {k: " ".join(" ".join(v).split()) for k, v in entries.items()}


@pytest.mark.parametrize("daemon", DAEMONS)
def test_man_page_describes_every_key_with_its_default(daemon):
    entries = _man_entries(daemon)
    for section, key, option in c.describe(DAEMONS[daemon]):
        entry = entries.get((section, key))
        assert entry is not None, f"{daemon}.ini(5) lacks [{section}] {key}"
        if option.required:
            assert "required" in entry, f"{daemon}.ini(5): [{section}] {key} is required"
        else:
            shown = option.default or "empty"
            assert f"Default: {shown} ." in entry or f"Default: {shown}." in entry, (
                f"{daemon}.ini(5): [{section}] {key} should say 'Default: {shown}.': {entry!r}"
            )
    assert set(entries) == {(s, k) for s, k, _ in c.describe(DAEMONS[daemon])}
