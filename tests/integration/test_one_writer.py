"""One writer per directory: a second meterd for the same meter (live or ``--replay``) and
a second pvsimd for the same output directory refuse to start — exit 75, one line naming
the directory and the first one's pid — and the first one's rows are untouched."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pvsim.lifecycle import EX_IN_USE
from tests.support.daemons import DaemonProcess, Site
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

HEADER = "timestamp,meter_id,meter_w,pv_w,sum_w,seq"


def _ready(proc: DaemonProcess) -> None:
    wait_until(lambda: "ready:" in proc.log(), timeout=30, message=proc.log())


def _refused(proc: DaemonProcess, directory: Path, holder: DaemonProcess) -> None:
    """It exits 75 with one error line naming ``directory`` and the holder's pid."""
    assert proc.proc.wait(timeout=30) == EX_IN_USE, proc.log()
    errors = [line for line in proc.log().splitlines() if " ERROR " in line]
    assert len(errors) == 1, proc.log()
    assert f"{directory} is in use by process {holder.pid}" in errors[0], errors
    assert "Traceback" not in proc.log()


def _check_files(site: Site, meter: str) -> list[int]:
    """Every day file: one header, then rows in time order; the seqs, in file order."""
    seqs = []
    for path in site.files(meter):
        lines = path.read_text().splitlines()
        assert lines[0] == HEADER and HEADER not in lines[1:], path
        stamps = [line.split(",")[0] for line in lines[1:]]
        assert stamps == sorted(set(stamps)), f"{path}: rows out of order or repeated"
        seqs += [int(line.rsplit(",", 1)[1]) for line in lines[1:]]
    return seqs


def test_a_second_pvsimd_for_the_same_directory_is_refused(site):
    first = site.start_pvsimd()
    _ready(first)
    meter = site.start_meterd("house-a", interval=0.02)
    wait_until(lambda: len(site.rows("house-a")) >= 20, timeout=30)
    journal = site.output / ".journal"

    second = site.start("pvsimd", site.pvsimd_config(), name="pvsimd-second")
    _refused(second, site.output, first)
    # the first one goes on writing, alone
    before = len(site.rows("house-a"))
    wait_until(lambda: len(site.rows("house-a")) >= before + 20, timeout=30)
    assert first.running() and "Traceback" not in first.log()

    assert meter.stop() == 0 and first.stop() == 0
    seqs = _check_files(site, "house-a")
    assert seqs == list(range(site.assigned("house-a"))), "lost, doubled or out of order"
    assert not journal.exists() or journal.stat().st_size == 0
    # once the first has stopped, the directory is free: a rerun continues the files
    again = site.start("pvsimd", site.pvsimd_config(), name="pvsimd-again")
    _ready(again)
    assert again.stop() == 0
    assert _check_files(site, "house-a") == seqs


def test_a_pvsimd_killed_with_sigkill_leaves_no_stale_lock(site):
    first = site.start_pvsimd()
    _ready(first)
    meter = site.start_meterd("house-k", interval=0.02)
    wait_until(lambda: len(site.rows("house-k")) >= 20, timeout=30)
    first.signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    assert (site.output / ".lock").read_text().strip() == str(first.pid)  # the file stays

    second = site.start("pvsimd", site.pvsimd_config(), name="pvsimd-second")
    _ready(second)  # the kernel released the lock with the process
    assert meter.stop() == 0
    assigned = site.assigned("house-k")
    wait_until(lambda: len(site.rows("house-k")) >= assigned, timeout=30)
    assert second.stop() == 0
    assert sorted(_check_files(site, "house-k")) == list(range(assigned))


def test_a_second_meterd_for_the_same_meter_is_refused_live_or_replaying(site):
    pvsimd = site.start_pvsimd()
    _ready(pvsimd)
    first = site.start_meterd("house-b", interval=0.02)
    _ready(first)
    wait_until(lambda: len(site.rows("house-b")) >= 20, timeout=30)
    state = site.state / "house-b"

    config = site.meterd_config("house-b", interval=0.02)
    second = site.start("meterd", config, name="meterd-second")
    _refused(second, state, first)
    replay = DaemonProcess(
        "meterd", config, site.root / "replay.log", "--replay", "2026-06-21", "2026-06-22"
    )
    site.processes.append(replay.start())
    _refused(replay, state, first)

    before = len(site.rows("house-b"))
    wait_until(lambda: len(site.rows("house-b")) >= before + 20, timeout=30)
    assert first.stop() == 0
    assigned = site.assigned("house-b")
    wait_until(lambda: len(site.rows("house-b")) >= assigned, timeout=30)
    assert pvsimd.stop() == 0
    # the refused ones took no seq and wrote no reading: the first one's, each once
    assert _check_files(site, "house-b") == list(range(assigned))
    assert not any("2026-06-21" in p.name for p in site.files("house-b"))
