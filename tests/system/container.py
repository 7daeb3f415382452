"""A Debian 12 container with a real systemd as PID 1, for the system tests.

* :func:`ensure_root_cache` builds, once, a minimal bookworm root under
  ``/var/cache/pvsim-test/bookworm-root`` (``PVSIM_TEST_CACHE`` moves it) with
  ``debootstrap --variant=minbase`` from the host's Debian mirror, and
  downloads the packages that the pvsim packages depend on into its apt
  cache, so that later ``apt install ./*.deb`` runs need no network.  It is
  rebuilt when :data:`RECIPE` changes, when it is older than
  :data:`MAX_AGE_DAYS`, or with ``PVSIM_TEST_REFRESH=1``.
* :class:`Container` boots that root with ``systemd-nspawn -b`` on a
  throwaway overlay (upper layer under /var/tmp), so the cache is never
  changed, and runs commands inside with ``nsenter``.  The container shares
  the host's network: the broker on 127.0.0.1:5672 is reachable from inside;
  ``private_network=True`` gives it a loopback of its own and no other
  network (a newcomer's machine, tests/system/test_newcomer.py: what
  ``scripts/demo`` installs, RabbitMQ included, comes from the apt cache).

The host needs no systemd of its own (``--register=no --keep-unit``); all of
this needs root.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.support.wait import wait_until

CACHE_DIR = Path(os.environ.get("PVSIM_TEST_CACHE", "/var/cache/pvsim-test"))
SUITE = "bookworm"
MAX_AGE_DAYS = 14
# Packages downloaded (not installed) into the cached root: what the pvsim
# packages pull in, and what scripts/demo installs (RabbitMQ too), so that
# installing them works offline.
PREFETCH = (
    "python3",
    "python3-pika",
    "python3-tenacity",
    "python3-sdnotify",
    "python3-prometheus-client",
    "adduser",
    "procps",
    "rabbitmq-server",
)
INCLUDE = ("systemd", "systemd-sysv", "dbus", "ca-certificates")
# Change this string to force a rebuild of existing caches.
RECIPE = f"v1 {SUITE} minbase include={','.join(INCLUDE)} prefetch={','.join(PREFETCH)}"

CONTAINER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "DEBIAN_FRONTEND": "noninteractive",
    "SYSTEMD_COLORS": "0",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_LESS": "",
}
WORK_PREFIX = "pvsim-system-"


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM (a clean power-off) to nspawn if the test process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def log(msg: str) -> None:
    print(f"[system {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def host_mirror() -> str:
    """The Debian mirror of the host's apt sources (PVSIM_TEST_MIRROR overrides)."""
    if os.environ.get("PVSIM_TEST_MIRROR"):
        return os.environ["PVSIM_TEST_MIRROR"]
    candidates: list[str] = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            if re.search(rf"^Suites:.*\b{SUITE}\b(?!-)", stanza, re.M | re.I):
                m = re.search(r"^URIs:\s*(\S+)", stanza, re.M | re.I)
                if m:
                    candidates.append(m.group(1))
    lists = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in lists:
        if path.exists():
            for line in path.read_text().splitlines():
                m = re.match(rf"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", line)
                if m:
                    candidates.append(m.group(1))
    for uri in candidates:
        if "security" not in uri:
            return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def _run_logged(cmd: Sequence[str], logfile: Path, **kw) -> None:
    with logfile.open("ab") as out:
        out.write(f"\n$ {shlex.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, **kw
        )
    if proc.returncode != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{shlex.join(cmd)} failed (exit {proc.returncode}):\n{tail}")


def _cache_is_fresh(root: Path) -> bool:
    marker = root / ".pvsim-test-ready"
    if os.environ.get("PVSIM_TEST_REFRESH") == "1" or not marker.exists():
        return False
    if marker.read_text().strip() != RECIPE:
        return False
    return time.time() - marker.stat().st_mtime < MAX_AGE_DAYS * 86400


def _build_root_cache(root: Path) -> None:
    new = root.with_name(root.name + ".new")
    if new.exists():
        shutil.rmtree(new)
    logfile = root.with_name(root.name + ".log")
    logfile.write_text(f"recipe: {RECIPE}\n")
    mirror = host_mirror()
    t0 = time.monotonic()
    _run_logged(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(INCLUDE)}",
            SUITE,
            str(new),
            mirror,
        ],
        logfile,
    )
    t1 = time.monotonic()
    # What a normal installation has and minbase lacks: "localhost" must resolve
    # (the daemons' default broker URL uses it).
    (new / "etc/hosts").write_text(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    (new / "etc/apt/sources.list").write_text(f"deb {mirror} {SUITE} main\n")
    # Keep what apt downloads (the default, stated for clarity).
    (new / "etc/apt/apt.conf.d/50pvsim-test").write_text(
        'Binary::apt::APT::Keep-Downloaded-Packages "true";\n'
    )
    env = {**CONTAINER_ENV}
    _run_logged(["chroot", str(new), "apt-get", "-q", "update"], logfile, env=env)
    _run_logged(
        ["chroot", str(new), "apt-get", "-q", "-y", "--download-only", "install", *PREFETCH],
        logfile,
        env=env,
    )
    (new / ".pvsim-test-ready").write_text(RECIPE + "\n")
    if root.exists():
        shutil.rmtree(root)
    new.rename(root)
    log(
        f"root cache {root} built: debootstrap {t1 - t0:.0f}s, "
        f"apt prefetch {time.monotonic() - t1:.0f}s (log: {logfile})"
    )


@contextlib.contextmanager
def root_cache() -> Iterator[Path]:
    """The cached root, built if needed; held with a shared lock while in use."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    root = CACHE_DIR / f"{SUITE}-root"
    with (CACHE_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        if not _cache_is_fresh(root):
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _cache_is_fresh(root):
                _build_root_cache(root)
            fcntl.flock(lock, fcntl.LOCK_SH)  # downgrade; the cache stays as it is
        yield root


def sweep_stale_workdirs() -> None:
    """Unmount and remove the work dirs of test sessions that died without cleanup."""
    for work in Path("/var/tmp").glob(WORK_PREFIX + "*"):
        try:
            owner = int((work / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if Path(f"/proc/{owner}").exists():
            continue
        nspawn = work / "nspawn.pid"
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int(nspawn.read_text()), 9)
        subprocess.run(["umount", "-l", str(work / "merged")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


class Container:
    """A booted container on an overlay of ``lower``; see the module docstring."""

    def __init__(self, lower: Path, name: str | None = None, private_network: bool = False) -> None:
        self.lower = lower
        self.private_network = private_network
        self.name = name or f"pvsimtest-{secrets.token_hex(3)}"
        self.work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir="/var/tmp"))
        (self.work / "owner.pid").write_text(str(os.getpid()))
        self.root = self.work / "merged"
        self.console_log = self.work / "console.log"
        self.nspawn: subprocess.Popen | None = None
        self.pid1: int | None = None
        self._mounted = False
        self.timings: dict[str, float] = {}

    # -- life cycle -------------------------------------------------------------
    def start(self, boot_timeout: float = 120.0) -> Container:
        t0 = time.monotonic()
        self.root.mkdir()
        upper, workdir = self.work / "upper", self.work / "ovwork"
        upper.mkdir()
        workdir.mkdir()
        mount = subprocess.run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={self.lower},upperdir={upper},workdir={workdir}",
                str(self.root),
            ],
            capture_output=True,
            text=True,
        )
        if mount.returncode == 0:
            self._mounted = True
        else:  # no overlayfs here: a full copy (some seconds more)
            log(f"overlay mount failed ({mount.stderr.strip()}); copying the root instead")
            self.root.rmdir()
            subprocess.run(
                ["cp", "-a", "--reflink=auto", str(self.lower), str(self.root)], check=True
            )
        self.timings["prepare"] = time.monotonic() - t0

        t0 = time.monotonic()
        with self.console_log.open("wb") as out:
            self.nspawn = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "--quiet",
                    "-D",
                    str(self.root),
                    "--register=no",
                    "--keep-unit",
                    "--boot",
                    f"--machine={self.name}",
                    "--console=read-only",
                    "--link-journal=no",
                    *(["--private-network"] if self.private_network else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        (self.work / "nspawn.pid").write_text(str(self.nspawn.pid))
        self.pid1 = wait_until(self._find_pid1, timeout=30, message="container's systemd not found")

        def booted() -> bool:
            if self.nspawn.poll() is not None:
                raise AssertionError(
                    f"systemd-nspawn exited {self.nspawn.returncode}: {self.console()}"
                )
            proc = self.run(
                "systemctl", "is-system-running", "--wait", check=False, timeout=boot_timeout
            )
            return proc.stdout.strip() in ("running", "degraded")

        wait_until(booted, timeout=boot_timeout, interval=0.2, message="container did not boot")
        state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
        if state != "running":
            failed = self.run("systemctl", "--failed", "--no-legend", check=False).stdout
            log(f"container {self.name} is {state}: {failed.strip()}")
        self.timings["boot"] = time.monotonic() - t0
        return self

    def _find_pid1(self) -> int | None:
        assert self.nspawn is not None
        if self.nspawn.poll() is not None:
            raise AssertionError(
                f"systemd-nspawn exited {self.nspawn.returncode}: {self.console()}"
            )
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...
            comm = text[text.index("(") + 1 : text.rindex(")")]
            ppid = int(text[text.rindex(")") + 2 :].split()[1])
            if ppid == self.nspawn.pid and comm == "systemd":
                return int(stat.parent.name)
        return None

    def console(self, lines: int = 30) -> str:
        try:
            text = self.console_log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 60.0) -> None:
        """Power the container off (kill it if it does not), drop the overlay."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            self.nspawn.terminate()  # nspawn asks the container's systemd to power off
            try:
                self.nspawn.wait(timeout)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait(10)
        if self._mounted:
            subprocess.run(["umount", str(self.root)], check=False)
            self._mounted = False
        with contextlib.suppress(OSError):
            Path(f"/run/systemd/nspawn/propagate/{self.name}").rmdir()
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> Container:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inside -----------------------------------------------------------------
    def run(
        self,
        *cmd: str,
        check: bool = True,
        timeout: float = 120.0,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the container (all its namespaces, its root)."""
        proc = subprocess.run(
            self.command(*cmd, env=env),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"in container: {shlex.join(cmd)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-3000:]}"
            )
        return proc

    def command(self, *cmd: str, env: dict[str, str] | None = None) -> list[str]:
        """The host's command line that runs ``cmd`` inside the container."""
        assert self.pid1 is not None
        return [
            "nsenter",
            "-t",
            str(self.pid1),
            "-m",
            "-u",
            "-i",
            "-n",
            "-p",
            "-r",
            "-w",
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in {**CONTAINER_ENV, **(env or {})}.items()),
            *cmd,
        ]

    def sh(self, script: str, **kw) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-ec", script, **kw)

    def path(self, inside: str) -> Path:
        """Host path of a path inside the container."""
        return self.root / inside.lstrip("/")

    def write(self, inside: str, text: str, mode: int = 0o644) -> None:
        p = self.path(inside)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(mode)

    # -- systemd helpers ----------------------------------------------------------
    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def prop(self, unit: str, name: str) -> str:
        return self.show(unit, name).get(name, "")

    def journal(self, *args: str) -> str:
        return self.run("journalctl", "--no-pager", "--quiet", *args, check=False).stdout
