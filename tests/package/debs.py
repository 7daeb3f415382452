"""Build the Debian packages once per test session, outside the work tree.

The source tree is copied file by file into a temporary directory (the files
that ``git ls-files --cached --others --exclude-standard`` lists, i.e. what a
clean clone would hold plus new files not yet added), and
``dpkg-buildpackage -us -uc -b`` runs there, so the work tree gets no build
products; the .debs land in the parent of the copy, as dpkg does it.

Both tests/package and tests/system use :func:`build_debs_once`; the first
call builds, later calls in the same session return the same result.

``PVSIM_TEST_DEBS=DIR`` skips the build and uses the .debs and the .changes
file in DIR instead (for iterating on the system tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BINARY_PACKAGES = ("python3-pvsim", "meterd", "pvsimd")

# Build with Debian's tools only: no pyenv or virtualenv python on PATH, no
# PYTHONPATH pointing back into the work tree.
BUILD_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "HOME": "/root",
}


@dataclass
class Debs:
    directory: Path
    changes: Path
    debs: dict[str, Path]  # binary package name -> .deb
    build_seconds: float = 0.0
    log: Path | None = None
    notes: list[str] = field(default_factory=list)

    def paths(self) -> list[Path]:
        return [self.debs[name] for name in BINARY_PACKAGES]


_built: Debs | None = None


def source_files(root: Path = REPO_ROOT) -> list[str]:
    """The files of a clean checkout (tracked ones plus new, non-ignored ones)."""
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({p for p in out.split("\0") if p and os.path.lexists(root / p)})


def copy_tree(dest: Path, root: Path = REPO_ROOT) -> Path:
    """Copy the clean checkout of ``root`` to ``dest`` (which must not exist)."""
    dest.mkdir(parents=True)
    for rel in source_files(root):
        src = root / rel
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    return dest


def _collect(directory: Path) -> Debs:
    changes = sorted(directory.glob("pvsim_*.changes"))
    debs = {}
    for name in BINARY_PACKAGES:
        found = sorted(directory.glob(f"{name}_*_all.deb"))
        if len(found) != 1:
            raise AssertionError(f"expected one {name}_*_all.deb in {directory}, found {found}")
        debs[name] = found[0]
    if len(changes) != 1:
        raise AssertionError(f"expected one pvsim_*.changes in {directory}, found {changes}")
    return Debs(directory=directory, changes=changes[0], debs=debs)


def build_debs(workdir: Path, root: Path = REPO_ROOT) -> Debs:
    """Copy the tree into ``workdir``/src and build the binary packages there."""
    src = copy_tree(workdir / "src", root)
    log = workdir / "dpkg-buildpackage.log"
    t0 = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.run(
            ["dpkg-buildpackage", "-us", "-uc", "-b"],
            cwd=src,
            env=BUILD_ENV,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise AssertionError(
            f"dpkg-buildpackage -us -uc -b failed (exit {proc.returncode}) in {src}; "
            f"last lines of {log}:\n{tail}"
        )
    debs = _collect(workdir)
    debs.build_seconds = seconds
    debs.log = log
    return debs


def build_debs_once(tmp_path_factory) -> Debs:
    """Session-wide cached :func:`build_debs` (or the .debs of PVSIM_TEST_DEBS)."""
    global _built
    if _built is None:
        given = os.environ.get("PVSIM_TEST_DEBS")
        if given:
            _built = _collect(Path(given).resolve())
            _built.notes.append(f"using prebuilt packages from PVSIM_TEST_DEBS={given}")
        else:
            _built = build_debs(tmp_path_factory.mktemp("debs"))
    return _built
