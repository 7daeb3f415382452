"""Helpers of the system tests, shared by conftest.py and the test modules."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.package.debs import Debs
from tests.support.wait import wait_until
from tests.system.container import Container, log

BROKER = ("127.0.0.1", 5672)
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
RUN_ID = secrets.token_hex(4)
UNITS = ("pvsimd.service", "meterd.service", "meterd@house-b.service")
TOOLS = ("systemd-nspawn", "debootstrap", "nsenter", "mount", "chroot", "dpkg-buildpackage")
FAILED_MODULES = pytest.StashKey[set]()  # names of the test modules with a failed test


@dataclass
class BrokerNames:
    """Exchange and queues of one test module, unique on the shared broker."""

    exchange: str
    queue: str
    dead_letter_queue: str

    @classmethod
    def new(cls, tag: str) -> BrokerNames:
        base = f"pvsimtest.{RUN_ID}.{tag}"
        return cls(f"{base}.readings", f"{base}.pvsimd", f"{base}.pvsimd.invalid")

    def delete(self) -> None:
        """Remove them from the broker (with the host's Debian python3-pika)."""
        code = textwrap.dedent(f"""
            import pika
            conn = pika.BlockingConnection(pika.URLParameters({BROKER_URL!r}))
            ch = conn.channel()
            ch.queue_delete({self.queue!r})
            ch.queue_delete({self.dead_letter_queue!r})
            ch.exchange_delete({self.exchange!r})
            conn.close()
        """)
        proc = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True)
        if proc.returncode != 0:
            log(f"could not delete {self}: {proc.stderr.strip()[-300:]}")


def preseed_config(c: Container, names: BrokerNames, interval: str = "0.5") -> None:
    """Local drop-ins, as an operator writes them, before the packages are installed.

    The units start on installation, so the broker names must be ours from
    the first start (the broker is the host's, shared); dpkg leaves the
    existing directories alone.  Nothing else: the shipped configs as they
    are — meterd sends as guest to localhost, pvsimd verifies senders and
    trusts the local guest (no sender_map).
    """
    c.write(
        "/etc/meterd/meterd.ini.d/50-systemtest.ini",
        f"[meter]\ninterval = {interval}\n\n[broker]\nexchange = {names.exchange}\n",
    )
    c.write(
        "/etc/pvsimd/pvsimd.ini.d/50-systemtest.ini",
        f"[broker]\nexchange = {names.exchange}\nqueue = {names.queue}\n"
        f"dead_letter_queue = {names.dead_letter_queue}\n",
    )


def add_meter_instance(
    c: Container, names: BrokerNames, name: str = "house-b", interval: str = "0.5"
) -> None:
    c.write(f"/etc/meterd/{name}.ini", f"[meter]\nid = {name}\n")
    c.write(
        f"/etc/meterd/{name}.ini.d/50-systemtest.ini",
        f"[meter]\ninterval = {interval}\n\n[broker]\nexchange = {names.exchange}\n",
    )


def install_packages(c: Container, debs: Debs, *extra: str) -> subprocess.CompletedProcess[str]:
    c.path("/root/debs").mkdir(parents=True, exist_ok=True)
    args = []
    for deb in debs.paths():
        shutil.copy2(deb, c.path(f"/root/debs/{deb.name}"))
        args.append(f"/root/debs/{deb.name}")
    t0 = time.monotonic()
    proc = c.run(
        "apt-get", "install", "-y", "-q", "--no-install-recommends", *extra, *args, timeout=600
    )
    c.timings["install"] = time.monotonic() - t0
    return proc


def unit_report(c: Container, units: tuple[str, ...] = UNITS, lines: int = 60) -> str:
    """systemctl status and the journal of ``units``, for failure reports."""
    out = [c.run("systemctl", "status", "--no-pager", "--lines=0", *units, check=False).stdout]
    args = [a for u in units for a in ("-u", u)]
    out.append(c.journal(*args, "-n", str(lines), "-o", "short-precise"))
    return "\n".join(out)


@contextlib.contextmanager
def booted(
    cached_root: Path, request: pytest.FixtureRequest, private_network: bool = False
) -> Iterator[Container]:
    """A container for one test module; its journal is printed if a test there failed."""
    c = Container(cached_root, private_network=private_network)
    try:
        c.start()
        t = c.timings
        log(f"container {c.name}: overlay {t['prepare']:.1f}s, boot {t['boot']:.1f}s")
        yield c
    finally:
        try:
            if (
                request.module.__name__ in request.session.stash.get(FAILED_MODULES, set())
                and c.pid1
            ):
                print(f"--- units and journal of container {c.name} ---")
                print(unit_report(c))
        finally:
            c.stop()


def wait_active(c: Container, unit: str, timeout: float = 60.0) -> None:
    wait_until(
        lambda: c.prop(unit, "ActiveState") == "active",
        timeout=timeout,
        message=f"{unit} not active: {c.show(unit, 'ActiveState', 'SubState', 'Result')}",
    )


def csv_files(c: Container, meter: str) -> list[str]:
    proc = c.run("sh", "-c", f"ls -1 /var/lib/pvsimd/{meter}/*.csv 2>/dev/null", check=False)
    return proc.stdout.split()


def csv_lines(c: Container, meter: str) -> int:
    files = csv_files(c, meter)
    if not files:
        return 0
    return int(c.run("sh", "-c", 'cat "$@" | wc -l', "-", *files).stdout.strip() or 0)
