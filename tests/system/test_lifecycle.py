"""Install, upgrade, remove, purge and reinstall, as debian/README.Debian describes.

The tests of this module run in order on one container: each one starts
from the state the previous one left.
"""

from __future__ import annotations

import pytest

from tests.support.wait import wait_until
from tests.system.container import Container, log
from tests.system.helpers import (
    UNITS,
    BrokerNames,
    add_meter_instance,
    booted,
    csv_files,
    csv_lines,
    install_packages,
    preseed_config,
    wait_active,
)

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def names() -> BrokerNames:
    return BrokerNames.new("lifecycle")


@pytest.fixture(scope="module")
def box(cached_root, debs, names, request):
    with booted(cached_root, request) as c:
        try:
            yield c
        finally:
            c.run("systemctl", "stop", *UNITS, "meterd@*.service", check=False)
            names.delete()


def exists(c: Container, path: str) -> bool:
    return c.run("test", "-e", path, check=False).returncode == 0


def getent(c: Container, db: str, name: str) -> str:
    return c.run("getent", db, name, check=False).stdout.strip()


def main_pids(c: Container) -> dict[str, str]:
    return {unit: c.prop(unit, "MainPID") for unit in UNITS}


def test_install_creates_users_and_starts_the_daemons(box: Container, debs, names):
    preseed_config(box, names)
    install_packages(box, debs)
    log(f"packages installed in {box.timings['install']:.1f}s")
    for unit in ("meterd.service", "pvsimd.service"):
        assert box.run("systemctl", "is-enabled", unit).stdout.strip() == "enabled"
        wait_active(box, unit)
    add_meter_instance(box, names, "house-b")
    box.run("systemctl", "enable", "--now", "meterd@house-b.service")
    wait_active(box, "meterd@house-b.service")
    assert getent(box, "passwd", "meterd").split(":")[5:] == [
        "/var/lib/meterd",
        "/usr/sbin/nologin",
    ]
    assert getent(box, "passwd", "pvsimd").split(":")[5:] == [
        "/var/lib/pvsimd",
        "/usr/sbin/nologin",
    ]
    assert getent(box, "group", "pvsim-data")
    wait_until(
        lambda: csv_lines(box, "house-a") >= 2 and csv_lines(box, "house-b") >= 2,
        timeout=90,
        message="no rows recorded",
    )


def test_upgrade_restarts_all_daemons(box: Container, debs):
    before = main_pids(box)
    install_packages(box, debs, "--reinstall")  # postinst configure <old version>

    def all_restarted() -> bool:
        now = main_pids(box)
        return all(now[u] not in ("0", before[u]) for u in UNITS) and all(
            box.prop(u, "ActiveState") == "active" for u in UNITS
        )

    wait_until(
        all_restarted, timeout=60, message=f"not all restarted: {before} -> {main_pids(box)}"
    )


def test_remove_stops_the_daemons_and_keeps_everything_else(box: Container):
    box.run("apt-get", "remove", "-y", "-q", "meterd", "pvsimd", timeout=300)
    for unit in UNITS:
        assert box.prop(unit, "ActiveState") in ("inactive", ""), unit
    assert not box.run("pgrep", "-f", "/usr/bin/(meterd|pvsimd)", check=False).stdout
    for path in (
        "/etc/meterd/meterd.ini",
        "/etc/meterd/meterd.ini.d/50-systemtest.ini",
        "/etc/meterd/house-b.ini",
        "/etc/pvsimd/pvsimd.ini",
        "/etc/pvsimd/pvsimd.ini.d/50-systemtest.ini",
        "/var/lib/meterd/house-a",
        "/var/lib/meterd/house-b",
    ):
        assert exists(box, path), path
    assert csv_files(box, "house-a") and csv_files(box, "house-b")
    assert getent(box, "passwd", "meterd") and getent(box, "passwd", "pvsimd")
    status = box.run("dpkg-query", "-W", "-f=${db:Status-Abbrev}\n", "meterd", "pvsimd").stdout
    assert status.split() == ["rc", "rc"]


def test_purge_removes_config_state_and_users_but_keeps_the_data(box: Container):
    proc = box.run("apt-get", "purge", "-y", "-q", "meterd", "pvsimd", timeout=300)
    assert "/var/lib/pvsimd has been kept" in proc.stdout + proc.stderr
    for path in (
        "/etc/meterd",
        "/etc/pvsimd",
        "/var/lib/meterd",
        "/lib/systemd/system/meterd.service",
        "/lib/systemd/system/pvsimd.service",
        "/etc/systemd/system/multi-user.target.wants/meterd.service",
        "/etc/systemd/system/multi-user.target.wants/pvsimd.service",
        "/etc/systemd/system/multi-user.target.wants/meterd@house-b.service",
    ):
        assert not exists(box, path), path
    for db, name in (
        ("passwd", "meterd"),
        ("passwd", "pvsimd"),
        ("group", "meterd"),
        ("group", "pvsimd"),
    ):
        assert not getent(box, db, name), f"{db} {name} still there"
    assert getent(box, "group", "pvsim-data"), "pvsim-data must stay: it may still read the data"
    kept = csv_files(box, "house-a") + csv_files(box, "house-b")
    assert len(kept) >= 2
    owners = box.run("stat", "-c", "%U:%G", "/var/lib/pvsimd", *kept).stdout.split()
    assert set(owners) == {"root:pvsim-data"}, owners
    assert box.run("dpkg-query", "-W", "meterd", "pvsimd", check=False).returncode != 0


def test_reinstall_after_purge_takes_the_kept_data_over(box: Container, debs, names):
    rows = csv_lines(box, "house-a")
    preseed_config(box, names)  # purge removed the drop-ins with /etc/pvsimd
    install_packages(box, debs)
    wait_active(box, "pvsimd.service")
    wait_until(
        lambda: csv_lines(box, "house-a") > rows,
        timeout=90,
        message="no new rows after the reinstall",
    )
    owners = box.run("stat", "-c", "%U:%G", "/var/lib/pvsimd", *csv_files(box, "house-a")).stdout
    assert set(owners.split()) == {"pvsimd:pvsim-data"}, owners
