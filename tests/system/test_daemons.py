"""The installed daemons under a real systemd, used as an operator would.

One container for the module: the packages are installed (the units start on
installation with the preseeded drop-ins), then ``meterd@house-b`` is enabled
and started as a second meter.  The tests share that container; each leaves
the daemons running as it found them.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import re
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from meterd import load_model
from meterd.settings import SCHEMA as METERD
from pvsim import config as c
from pvsimd.pv_model import PvSystem
from pvsimd.settings import SCHEMA as PVSIMD
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

REPO = Path(__file__).resolve().parents[2]
DATE_CSV = re.compile(r"/var/lib/pvsimd/(house-[ab])/(\d{4}-\d{2}-\d{2})\.csv")


@pytest.fixture(scope="module")
def box(cached_root, debs, request):
    names = BrokerNames.new("daemons")
    with booted(cached_root, request) as c:
        try:
            preseed_config(c, names)
            install_packages(c, debs)
            log(f"packages installed in {c.timings['install']:.1f}s")
            add_meter_instance(c, names, "house-b")
            c.run("systemctl", "enable", "--now", "meterd@house-b")
            yield c
        finally:
            c.run("systemctl", "stop", *UNITS, "meterd@*.service", check=False)
            names.delete()


def journal_lines(c: Container, *args: str) -> list[str]:
    return [line for line in c.journal(*args, "-o", "cat").splitlines() if line.strip()]


@pytest.mark.parametrize("unit", UNITS)
def test_unit_is_active_and_reports_status(box: Container, unit: str):
    wait_active(box, unit)
    link = "consuming" if unit.startswith("pvsimd") else "connected since"
    status = wait_until(
        lambda: (
            (text := box.prop(unit, "StatusText")) and link in text and "today" in text and text
        ),
        timeout=90,
        message=f"{unit}: no STATUS= saying it is {link!r} with today's count",
    )
    print(f"{unit}: {status}")
    assert "backlog" in status and "last reading" in status
    props = box.show(unit, "Type", "NotifyAccess", "User", "WatchdogUSec", "NRestarts")
    assert props["Type"] == "notify" and props["NotifyAccess"] == "main"
    assert props["User"] == unit.split("@")[0].removesuffix(".service")
    assert props["NRestarts"] == "0"


@pytest.mark.parametrize("meter", ["house-a", "house-b"])
def test_rows_are_appended_per_meter_and_day(box: Container, meter: str):
    wait_until(
        lambda: csv_lines(box, meter) >= 3,
        timeout=90,
        message=f"no rows for {meter} under /var/lib/pvsimd",
    )
    files = csv_files(box, meter)
    assert len(files) in (1, 2), files  # two around midnight at the site
    today = datetime.datetime.now(datetime.UTC).date()
    for path in files:
        m = DATE_CSV.fullmatch(path)
        assert m and m.group(1) == meter, path
        day = datetime.date.fromisoformat(m.group(2))
        assert abs((day - today).days) <= 1, path
    before = csv_lines(box, meter)
    wait_until(
        lambda: csv_lines(box, meter) > before,
        timeout=30,
        message=f"rows for {meter} stopped growing",
    )


@pytest.mark.parametrize("meter", ["house-a", "house-b"])
def test_rows_hold_what_the_models_give_for_their_timestamps(box: Container, meter: str):
    """The shipped configs (no sender_map): each row is a reading of its house, accepted
    as sent by the local guest, with the house's load and the site's PV for its own
    timestamp in the site's time, the sum as written, and the meter's sequence."""
    wait_until(lambda: csv_lines(box, meter) >= 21, timeout=90, message=f"rows of {meter}")
    shipped = c.load(REPO / "etc/meterd/meterd.ini", METERD).meter
    # house-b: /etc/meterd/house-b.ini sets only its id
    house = load_model.build(dataclasses.replace(shipped, id=meter))
    pvsimd_config = c.load(REPO / "etc/pvsimd/pvsimd.ini", PVSIMD)
    pv = PvSystem.from_config(pvsimd_config.site, pvsimd_config.pv)
    site_tz = pvsimd_config.site.timezone
    rows = []
    for path in csv_files(box, meter):
        with open(box.path(path), newline="") as fh:
            lines = list(csv.reader(fh))
        assert lines[0] == ["timestamp", "meter_id", "meter_w", "pv_w", "sum_w", "seq"]
        rows += lines[1:]
    seqs = [int(row[5]) for row in rows]
    assert seqs == sorted(set(seqs)), "seqs repeat or go back"
    for stamp, meter_id, meter_w, pv_w, sum_w, _seq in rows[-20:]:
        ts = datetime.datetime.fromisoformat(stamp)
        assert ts.utcoffset() == ts.astimezone(site_tz).utcoffset(), stamp
        assert meter_id == meter
        assert Decimal(meter_w) == Decimal(f"{house.power_w(ts):.1f}"), (stamp, meter_w)
        assert Decimal(pv_w) == Decimal(f"{pv.power_w(ts):.1f}"), (stamp, pv_w)
        assert Decimal(sum_w) == Decimal(meter_w) + Decimal(pv_w)
    assert "forged" not in box.journal("-u", "pvsimd", "-o", "cat")
    assert "guest" in box.journal("-u", "pvsimd", "-o", "cat")  # it says whom it trusts


def test_a_second_daemon_for_the_same_meter_or_directory_is_refused(box: Container):
    """meterd@dup with meterd.service's meter id, and a second pvsimd by hand: exit 75,
    one line naming the directory and the running one's pid, no restart."""
    wait_active(box, "meterd.service")
    wait_active(box, "pvsimd.service")
    holder = box.prop("meterd.service", "MainPID")
    box.write("/etc/meterd/dup.ini", "[meter]\nid = house-a\n")
    unit = "meterd@dup.service"
    try:
        assert box.run("systemctl", "start", unit, check=False).returncode != 0
        wait_until(lambda: box.prop(unit, "ActiveState") == "failed", timeout=30)
        props = box.show(unit, "Result", "ExecMainStatus", "NRestarts")
        assert props == {"Result": "exit-code", "ExecMainStatus": "75", "NRestarts": "0"}
        errors = box.journal("-u", unit, "-t", "meterd", "-p", "err", "-o", "cat").splitlines()
        assert len(errors) == 1 and errors[0].endswith(
            f"/var/lib/meterd/house-a is in use by process {holder}, another meterd of "
            "meter house-a (it holds /var/lib/meterd/house-a/.lock); stop that one first"
        ), errors
        assert box.prop("meterd.service", "MainPID") == holder  # the first one runs on
    finally:
        box.run("systemctl", "reset-failed", unit, check=False)
        box.run("rm", "-f", "/etc/meterd/dup.ini")
    pvsimd = box.prop("pvsimd.service", "MainPID")
    second = box.run(
        "runuser", "-u", "pvsimd", "-g", "pvsim-data", "--", "pvsimd", check=False, timeout=60
    )
    assert second.returncode == 75, second.stderr
    assert f"/var/lib/pvsimd is in use by process {pvsimd}, another pvsimd" in second.stderr
    assert box.prop("pvsimd.service", "MainPID") == pvsimd


def test_data_is_readable_by_pvsim_data_members_only(box: Container):
    wait_until(lambda: csv_files(box, "house-a"), timeout=90)
    csv = csv_files(box, "house-a")[0]

    def stat(path: str) -> str:
        return box.run("stat", "-c", "%U:%G %a", path).stdout.strip()

    assert stat("/var/lib/pvsimd") == "pvsimd:pvsim-data 2750"
    assert stat("/var/lib/pvsimd/house-a") == "pvsimd:pvsim-data 2750"
    assert stat(csv) == "pvsimd:pvsim-data 640"
    box.run("useradd", "--no-create-home", "--groups", "pvsim-data", "alice", check=False)
    box.run("useradd", "--no-create-home", "mallory", check=False)
    assert box.run("runuser", "-u", "alice", "--", "head", "-n1", csv).stdout
    denied = box.run("runuser", "-u", "mallory", "--", "head", "-n1", csv, check=False)
    assert denied.returncode != 0
    assert (
        box.run(
            "runuser", "-u", "alice", "--", "sh", "-c", f"echo x >> {csv}", check=False
        ).returncode
        != 0
    )


def test_each_meter_keeps_state_in_its_own_directory(box: Container):
    for meter in ("house-a", "house-b"):
        path = f"/var/lib/meterd/{meter}"
        wait_until(
            lambda p=path: box.run("test", "-d", p, check=False).returncode == 0,
            timeout=30,
            message=f"{path} missing",
        )
        assert box.run("stat", "-c", "%U", path).stdout.strip() == "meterd"
    assert (
        box.run("stat", "-c", "%U:%G %a", "/var/lib/meterd").stdout.strip() == "meterd:meterd 750"
    )


def test_journal_priorities(box: Container):
    wait_active(box, "pvsimd.service")
    info = wait_until(
        lambda: journal_lines(box, "-u", "pvsimd", "-t", "pvsimd", "-p", "info..info"),
        timeout=30,
        message="pvsimd logged nothing at priority info",
    )
    warnings_before = journal_lines(box, "-u", "pvsimd", "-t", "pvsimd", "-p", "warning")
    assert not set(info) & set(warnings_before), "info lines show up under -p warning"
    # A message that is no reading, straight into pvsimd's queue.
    queue = box.run("sh", "-c", "cat /etc/pvsimd/pvsimd.ini.d/50-systemtest.ini").stdout
    queue = re.search(r"^queue = (\S+)", queue, re.M).group(1)
    box.run(
        "python3",
        "-c",
        textwrap.dedent(f"""
        import pika
        conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@localhost:5672/%2F"))
        conn.channel().basic_publish("", {queue!r}, b"this is not a reading")
        conn.close()
    """),
    )
    new = wait_until(
        lambda: journal_lines(box, "-u", "pvsimd", "-t", "pvsimd", "-p", "warning")[
            len(warnings_before) :
        ],
        timeout=30,
        message="no warning logged for a malformed message",
    )
    print("warning:", new)
    assert box.prop("pvsimd.service", "ActiveState") == "active"


def test_reload_applies_a_valid_config_and_refuses_an_invalid_one(box: Container):
    unit = "pvsimd.service"
    wait_active(box, unit)
    pid = box.prop(unit, "MainPID")
    box.write("/etc/pvsimd/pvsimd.ini.d/60-reload.ini", "[logging]\nlevel = debug\n")
    try:
        box.run("systemctl", "reload", unit)
        assert box.prop(unit, "MainPID") == pid
        wait_active(box, unit)
        assert "Reloaded pvsimd.service" in box.journal("-u", unit, "-o", "cat")

        box.write("/etc/pvsimd/pvsimd.ini.d/90-broken.ini", "[site]\nlatitude = north\n")
        proc = box.run("systemctl", "reload", unit, check=False)
        assert proc.returncode != 0, "reload accepted an invalid configuration"
        assert box.prop(unit, "MainPID") == pid
        assert box.prop(unit, "ActiveState") == "active"
        wait_until(
            lambda: "90-broken.ini" in box.journal("-u", unit, "-o", "cat"),
            timeout=10,
            message="the reload's configuration error is not in the journal",
        )
    finally:
        box.run(
            "rm",
            "-f",
            "/etc/pvsimd/pvsimd.ini.d/60-reload.ini",
            "/etc/pvsimd/pvsimd.ini.d/90-broken.ini",
        )
    box.run("systemctl", "reload", unit)
    assert box.prop(unit, "MainPID") == pid


def test_bad_config_fails_with_78_and_is_not_restarted(box: Container):
    box.write("/etc/meterd/house-bad.ini", "[meter]\nid = house-bad\ninterval = soon\n")
    check = box.run(
        "meterd", "--check-config", "--config", "/etc/meterd/house-bad.ini", check=False
    )
    assert check.returncode == 78
    message = (check.stdout + check.stderr).strip()
    assert len(message.splitlines()) == 1, message
    assert all(word in message for word in ("/etc/meterd/house-bad.ini", "meter", "interval")), (
        message
    )

    unit = "meterd@house-bad.service"
    assert box.run("systemctl", "start", unit, check=False).returncode != 0
    # "failed" (not "activating/auto-restart") means no restart is scheduled.
    wait_until(lambda: box.prop(unit, "ActiveState") == "failed", timeout=30)
    props = box.show(unit, "SubState", "Result", "ExecMainStatus", "NRestarts")
    assert props == {
        "SubState": "failed",
        "Result": "exit-code",
        "ExecMainStatus": "78",
        "NRestarts": "0",
    }
    errors = box.journal("-u", unit, "-t", "meterd", "-p", "err", "-o", "cat")
    assert "/etc/meterd/house-bad.ini" in errors, "config error not logged at priority err"
    box.run("systemctl", "reset-failed", unit)


def test_watchdog_restarts_a_hung_daemon(box: Container):
    unit = "pvsimd.service"
    dropin = "/etc/systemd/system/pvsimd.service.d/50-watchdog.conf"
    box.write(dropin, "[Service]\nWatchdogSec=3\n")
    try:
        box.run("systemctl", "daemon-reload")
        box.run("systemctl", "restart", unit)
        wait_active(box, unit)
        assert box.prop(unit, "WatchdogUSec") == "3s"
        pid, restarts = box.prop(unit, "MainPID"), int(box.prop(unit, "NRestarts"))
        box.run("systemctl", "kill", "--kill-who=main", "--signal=SIGSTOP", unit)

        def restarted() -> bool:
            p = box.show(unit, "MainPID", "NRestarts", "ActiveState")
            return (
                int(p["NRestarts"]) > restarts
                and p["MainPID"] not in ("0", pid)
                and p["ActiveState"] == "active"
            )

        wait_until(restarted, timeout=60, interval=0.2, message="hung pvsimd was not restarted")
        assert "Watchdog timeout" in box.journal("-u", unit, "-o", "cat")
    finally:
        box.run("rm", "-f", dropin)
        box.run("systemctl", "daemon-reload")
        box.run("systemctl", "restart", unit, check=False)
    wait_active(box, unit)


@pytest.mark.parametrize("unit", ["meterd@house-b.service", "pvsimd.service"])
def test_stop_is_clean(box: Container, unit: str):
    wait_active(box, unit)
    box.run("systemctl", "stop", unit, timeout=60)
    props = box.show(unit, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert props == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainCode": "1",
        "ExecMainStatus": "0",
    }, props  # CLD_EXITED with status 0 (house-b is enabled, so systemd keeps these)
    box.run("systemctl", "start", unit)
    wait_active(box, unit)


def test_units_pass_verify_and_security_limits(box: Container):
    verify = box.run(
        "systemd-analyze",
        "verify",
        "--man=no",
        "meterd.service",
        "meterd@.service",
        "meterd@house-b.service",
        "pvsimd.service",
        "pvsimd@.service",
        "pvsimd@shard0.service",
        check=False,
    )
    ours = [
        line
        for line in (verify.stdout + verify.stderr).splitlines()
        if "meterd" in line or "pvsimd" in line
    ]
    assert verify.returncode == 0 and not ours, verify.stdout + verify.stderr
    for unit in (*UNITS, "pvsimd@shard0.service"):  # the template of docs/scaling.md too
        out = box.run("systemd-analyze", "security", "--no-pager", unit).stdout
        line = next(line for line in out.splitlines() if "Overall exposure level" in line)
        print(line)
        exposure = float(re.search(r":\s*(\d+\.\d+)", line).group(1))
        assert exposure <= 2.0, line


def test_pvsimd_syncs_with_syncfs_and_keeps_its_day_files_open(box: Container):
    """Under its unit's sandbox (seccomp filter, MemoryDenyWriteExecute, LimitNOFILE) pvsimd
    makes rows durable with syncfs through ctypes, not with its per-file fallback."""
    wait_active(box, "pvsimd.service")
    wait_until(lambda: csv_files(box, "house-a"), timeout=90)
    journal = box.journal("-u", "pvsimd", "-t", "pvsimd", "-o", "cat")
    assert "synced with one syncfs per batch, up to 16384 kept open" in journal
    assert "syncfs is not available" not in journal
    assert "does not fit the descriptor limit" not in journal
    assert "syncing" not in journal  # no failed sync
    pid = box.prop("pvsimd.service", "MainPID")
    limits = box.run("cat", f"/proc/{pid}/limits").stdout
    soft = int(re.search(r"^Max open files\s+(\d+)", limits, re.M).group(1))
    # LimitNOFILE=65536, capped by the container's own hard limit: room for 16384 files
    assert soft >= 16384 + 64, limits
    # the file stays open after the first write (pvsimd may just have been restarted)
    wait_until(
        lambda: "/var/lib/pvsimd/house-a/" in box.run("ls", "-l", f"/proc/{pid}/fd").stdout,
        timeout=30,
        message="pvsimd does not keep house-a's day file open",
    )
