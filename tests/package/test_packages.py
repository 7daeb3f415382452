"""The Debian packages build from a clean copy of the tree and lintian accepts them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.package.debs import BUILD_ENV, REPO_ROOT, Debs

pytestmark = pytest.mark.package


def deb_files(deb: Path) -> dict[str, str]:
    """path -> mode string (e.g. '-rw-r--r--') of every entry of a .deb."""
    out = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], check=True, capture_output=True, text=True
    ).stdout
    files = {}
    for line in out.splitlines():
        fields = line.split(None, 5)
        path = fields[5].split(" -> ")[0].removeprefix(".")
        files[path.rstrip("/") or "/"] = fields[0]
    return files


def deb_control(deb: Path, member: str) -> str:
    proc = subprocess.run(["dpkg-deb", "--info", str(deb), member], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""


def deb_field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "--field", str(deb), name], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_build_happens_outside_the_work_tree(debs: Debs):
    print(f"built in {debs.build_seconds:.1f}s: {[p.name for p in debs.paths()]}", *debs.notes)
    assert debs.directory != REPO_ROOT.parent
    assert REPO_ROOT not in debs.directory.parents


def test_lintian_reports_no_errors_or_warnings(debs: Debs):
    proc = subprocess.run(
        [
            "lintian",
            "--fail-on",
            "error,warning",
            "--display-info",
            "--display-experimental",
            str(debs.changes),
        ],
        capture_output=True,
        text=True,
        env=BUILD_ENV,
    )
    output = proc.stdout + proc.stderr
    print(output)
    bad = [line for line in output.splitlines() if re.match(r"[EW]: ", line)]
    assert not bad, "lintian errors/warnings:\n" + "\n".join(bad)
    assert proc.returncode == 0, f"lintian exit {proc.returncode}:\n{output}"


def test_packages_co_install_without_file_conflicts(debs: Debs):
    owners: dict[str, list[str]] = {}
    for name, deb in debs.debs.items():
        for path, mode in deb_files(deb).items():
            if not mode.startswith("d"):
                owners.setdefault(path, []).append(name)
    clashes = {path: names for path, names in owners.items() if len(names) > 1}
    assert not clashes


@pytest.mark.parametrize("daemon", ["meterd", "pvsimd"])
def test_daemon_package_layout(debs: Debs, daemon: str):
    deb = debs.debs[daemon]
    files = deb_files(deb)
    units = [f"/lib/systemd/system/{daemon}.service", f"/lib/systemd/system/{daemon}@.service"]
    expected = [
        f"/usr/bin/{daemon}",
        f"/etc/{daemon}/{daemon}.ini",
        f"/usr/share/man/man8/{daemon}.8.gz",
        f"/usr/share/man/man5/{daemon}.ini.5.gz",
        *units,
    ]
    missing = [p for p in expected if p not in files]
    # README.Debian, compressed by dh_compress once it is over 4 KiB (Debian policy 12.3)
    readme = f"/usr/share/doc/{daemon}/README.Debian"
    if readme not in files and readme + ".gz" not in files:
        missing.append(readme)
    assert not missing, f"{deb.name} lacks {missing}"
    assert files[f"/etc/{daemon}/{daemon}.ini.d"].startswith("d")
    assert deb_control(deb, "conffiles").split() == [f"/etc/{daemon}/{daemon}.ini"]
    depends = deb_field(deb, "Depends")
    assert "python3-pvsim (= " in depends and "adduser" in depends
    # The units are the ones in systemd/ of the tree.
    extracted = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True
    ).stdout
    assert (REPO_ROOT / "systemd" / f"{daemon}.service").read_bytes() in extracted


def test_python_package_holds_the_modules(debs: Debs):
    files = deb_files(debs.debs["python3-pvsim"])
    for module in ("pvsim", "meterd", "pvsimd"):
        assert f"/usr/lib/python3/dist-packages/{module}/__init__.py" in files
    assert "/usr/bin/pvsim-broker-setup" in files
    assert "/usr/share/man/man8/pvsim-broker-setup.8.gz" in files
    depends = deb_field(debs.debs["python3-pvsim"], "Depends")
    for dep in ("python3-pika", "python3-tenacity", "python3-sdnotify"):
        assert dep in depends
