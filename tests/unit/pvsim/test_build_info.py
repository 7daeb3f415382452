"""The build date: from debian/changelog in a clone, recorded by the build otherwise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pvsim import build_info

REPO = Path(__file__).resolve().parents[3]


def test_the_date_of_the_newest_changelog_entry():
    text = (
        "pvsim (0.3.0-1) unstable; urgency=medium\n\n  * New.\n\n"
        " -- pvsim maintainers <m@example.org>  Wed, 02 Dec 2026 08:00:00 +0100\n\n"
        "pvsim (0.2.0-1) unstable; urgency=medium\n\n  * Old.\n\n"
        " -- pvsim maintainers <m@example.org>  Tue, 24 Nov 2026 09:30:00 +0000\n"
    )
    assert build_info.changelog_epoch(text) == 1_796_194_800  # 2026-12-02T07:00:00Z
    assert build_info.changelog_epoch("no trailer\n") is None


def test_in_a_clone_the_build_date_is_the_changelogs():
    changelog = (REPO / "debian" / "changelog").read_text()
    assert build_info.build_epoch() == build_info.changelog_epoch(changelog)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", build_info.build_date_text())


def build(tmp_path: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"} | env
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)],
        cwd=REPO,
        env=environ,
        check=True,
        capture_output=True,
    )
    return (tmp_path / "pvsim" / build_info.GENERATED).read_text()


def test_a_build_records_source_date_epoch_else_the_changelogs_date(tmp_path):
    assert "EPOCH = 1234567890\n" in build(tmp_path / "a", SOURCE_DATE_EPOCH="1234567890")
    assert f"EPOCH = {build_info.build_epoch()}\n" in build(tmp_path / "b")
    got = subprocess.run(
        [sys.executable, "-c", "from pvsim import build_info; print(build_info.build_epoch())"],
        cwd=tmp_path / "a",
        env={"PATH": os.environ["PATH"]},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert got.strip() == "1234567890"  # the built package reads what its build recorded
