"""The first five minutes of a newcomer, on a fresh Debian 12 with no network.

A booted Debian 12 root (``systemd-nspawn --private-network``: a loopback of its own,
nothing else; nothing listens on 5672) holds the clone and, in apt's cache, the packages
scripts/demo installs (fetched beforehand with the host's network, see container.py).
There, in a real terminal (script(1)), as root:

1. ``scripts/demo`` installs python3, pika, tenacity, sdnotify and RabbitMQ, starts the
   broker and says so, replays yesterday — a day per house — prints the report, runs
   live; Ctrl-C stops it all and it exits 0, no process left;
2. a rerun continues: the same files (yesterday's unchanged to the byte, today's only
   appended to), one header each, the report finds nothing missing, Ctrl-C, exit 0.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.package.debs import copy_tree
from tests.support.demo_report import HOUSES, report_table
from tests.support.terminal import Terminal
from tests.system.container import Container, log
from tests.system.helpers import booted

pytestmark = pytest.mark.system

CLONE = "/root/pvsim"
RUN = f"{CLONE}/run"
HEADER = "timestamp,meter_id,meter_w,pv_w,sum_w,seq"
DAEMONS = r"python3 -m (meterd|pvsimd)"
LIVE = re.compile(r"^demo: \d\d:\d\d:\d\d  " + r".*".join(rf"{h} \d" for h in HOUSES), re.M)


@pytest.fixture(scope="module")
def newcomer(cached_root, request):
    with booted(cached_root, request, private_network=True) as c:
        # what a Debian installation has and a bare root lacks: its own name in /etc/hosts
        # (RabbitMQ's node is rabbit@<hostname>)
        name = c.run("hostname").stdout.strip()
        hosts = c.path("/etc/hosts")
        hosts.write_text(hosts.read_text() + f"127.0.1.1\t{name}\n")
        copy_tree(c.path(CLONE))
        yield c


def demo(c: Container) -> Terminal:
    return Terminal(["bash", "-c", f"cd {CLONE} && exec scripts/demo"], prefix=c.command())


def files(c: Container) -> dict[str, bytes]:
    return {
        str(p.relative_to(c.path(RUN))): p.read_bytes()
        for p in sorted(c.path(f"{RUN}/csv").glob("*/*.csv"))
    }


def daemons_left(c: Container) -> str:
    return c.run("pgrep", "-af", DAEMONS, check=False).stdout.strip()


def run_once(c: Container, first: bool) -> tuple[Terminal, dict, float]:
    """One run until live rows show, then Ctrl-C; its terminal, report and replay time."""
    t = demo(c)
    try:
        started = time.monotonic()
        if first:  # it installs what it needs, RabbitMQ too (which apt starts)
            t.wait_for(r"^install-deps: installing .*python3-pika", 120)
            t.wait_for(r"^install-deps: installing rabbitmq-server", 300)
        t.wait_for(r"^demo: RabbitMQ is up on localhost:5672", 300)
        t.wait_for(r"^demo: pvsimd is consuming", 120)
        day, ticks = t.wait_for(
            r"^demo: replaying (\S+) for .*\((\d+) readings each\)", 60
        ).groups()
        took = int(t.wait_for(rf"^demo: {day} replayed in (\d+) s", 300).group(1))
        t.wait_for(r"^demo: Ctrl-C stops it all", 120)
        report = report_table(t.output)
        t.wait_for(LIVE.pattern, 60)  # a live row of every house (a sample every 10 s)
        which = "first run" if first else "rerun"
        log(f"demo {which}: live after {time.monotonic() - started:.0f} s")
        t.ctrl_c()
        stopped = time.monotonic()
        assert t.wait(45) == 0, t.output[-3000:]
        log(f"Ctrl-C: stopped in {time.monotonic() - stopped:.1f} s")
        assert "demo: stopped. CSV files:" in t.output
        assert not daemons_left(c), daemons_left(c)
        assert set(report) == set(HOUSES), t.output
        for house, line in report.items():
            got = (line["rows"], line["missing_seq"], line["missing_time"])
            assert got == (ticks, "0", "0"), f"{house}: {line}"
        return t, {"day": day, "ticks": int(ticks), "report": report}, took
    except BaseException:
        out = t.output
        print(f"--- the demo's terminal ---\n{out[:3000]}\n[...]\n{out[-3000:]}")
        print(c.run("sh", "-c", f"tail -n 20 {RUN}/log/*.log", check=False).stdout)
        print(c.run("journalctl", "-u", "rabbitmq-server", "-n", "30", check=False).stdout)
        raise
    finally:
        t.close()


def check_files(found: dict[str, bytes], day: str, ticks: int) -> None:
    for house in HOUSES:
        text = found[f"csv/{house}/{day}.csv"].decode()
        lines = text.splitlines()
        assert lines[0] == HEADER and HEADER not in lines[1:]
        assert len(lines) - 1 == ticks
    for name, data in found.items():
        lines = data.decode().splitlines()
        assert lines[0] == HEADER and lines.count(HEADER) == 1, f"{name}: a second header"


def test_first_run_ctrl_c_and_rerun(newcomer: Container):
    c = newcomer
    assert c.run("sh", "-c", "command -v rabbitmq-server", check=False).returncode != 0
    interfaces = [
        line.split(":")[0].strip() for line in c.run("cat", "/proc/net/dev").stdout.splitlines()[2:]
    ]
    assert interfaces == ["lo"]  # no network but its own loopback

    t, first, took = run_once(c, first=True)
    out = t.output
    assert "set -e" not in out and "Traceback" not in out
    assert f"{RUN}/report --date" in out  # a command that works from a clone
    before = files(c)
    check_files(before, first["day"], first["ticks"])
    logs = c.run("sh", "-c", f"cat {RUN}/log/*.log").stdout
    assert "Traceback" not in logs and " ERROR " not in logs, logs[-3000:]
    assert "forged" not in logs  # the shipped sender rule: guest on this machine
    log(f"first run: yesterday replayed in {took} s")

    t, again, took = run_once(c, first=False)
    assert "install-deps: installing" not in t.output  # all there
    after = files(c)
    assert set(after) >= set(before), "files disappeared"
    check_files(after, first["day"], first["ticks"])
    for name, data in before.items():
        if name.endswith(f"/{first['day']}.csv"):
            assert after[name] == data, f"{name} changed"  # the replayed day, to the byte
        else:
            assert after[name].startswith(data), f"{name} was not only appended to"
    # the report through the wrapper the demo wrote, from somewhere else
    proc = c.run(f"{RUN}/report", "--date", first["day"])
    assert report_table(proc.stdout) == first["report"]
    log(f"rerun: yesterday replayed again in {took} s")


def test_where_localhost_does_not_resolve_the_demo_says_so(newcomer: Container):
    """The daemons' broker URL names localhost: without it in /etc/hosts the demo stops at
    once with a line saying what to add, instead of waiting for a broker it cannot name."""
    c = newcomer
    hosts = c.path("/etc/hosts")
    saved = hosts.read_text()
    hosts.write_text("".join(line for line in saved.splitlines(True) if "localhost" not in line))
    try:
        proc = c.run("bash", "-c", f"cd {CLONE} && exec scripts/demo", check=False, timeout=120)
    finally:
        hosts.write_text(saved)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (
        "ensure-rabbitmq: the name localhost does not resolve on this machine, and the daemons' "
        "broker URL uses it: add the line '127.0.0.1 localhost' to /etc/hosts"
    ) in proc.stderr
    assert "RabbitMQ is up" not in proc.stdout
    assert not daemons_left(c)
