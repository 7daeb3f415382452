"""Three meters → RabbitMQ → pvsimd → one CSV per meter per day, as a user sees it."""

from __future__ import annotations

import csv
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.support.daemons import queue_depth
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

HOUSES = ("house-a", "house-b", "house-c")
HEADER = ["timestamp", "meter_id", "meter_w", "pv_w", "sum_w", "seq"]


def _assert_contract(site, meter_id: str, assigned: int) -> None:
    """Every reading meterd assigned a seq to is exactly one well-formed row."""
    seqs = site.seqs(meter_id)
    assert sorted(seqs) == list(range(assigned)), f"{meter_id}: rows are not seq 0..{assigned - 1}"
    tz = ZoneInfo(site.timezone)
    for path in site.files(meter_id):
        lines = path.read_text().splitlines()
        assert lines[0] == ",".join(HEADER)
        assert lines.count(lines[0]) == 1, f"{path}: header more than once"
        for row in csv.DictReader(lines):
            ts = datetime.fromisoformat(row["timestamp"])
            assert ts.utcoffset() == ts.astimezone(tz).utcoffset(), row
            assert ts.astimezone(tz).date().isoformat() == path.stem, f"{row} in {path.name}"
            assert row["meter_id"] == meter_id
            assert Decimal(row["sum_w"]) == Decimal(row["meter_w"]) + Decimal(row["pv_w"])
            assert 0 <= Decimal(row["meter_w"]) <= 9000
            assert 0 <= Decimal(row["pv_w"]) <= 4000


def test_three_meters_rows_arrive_in_their_day_files(site):
    pvsimd = site.start_pvsimd()
    meters = [site.start_meterd(house) for house in HOUSES]
    for house in HOUSES:
        wait_until(lambda h=house: len(site.rows(h)) >= 20, timeout=30, message=f"rows of {house}")

    for meter in meters:
        assert meter.stop(timeout=10) == 0, meter.log()
    for house in HOUSES:
        assigned = site.assigned(house)
        wait_until(lambda h=house, n=assigned: len(site.rows(h)) >= n, timeout=20)
    assert pvsimd.stop(timeout=10) == 0, pvsimd.log()

    for house in HOUSES:
        _assert_contract(site, house, site.assigned(house))
    for proc in (pvsimd, *meters):
        assert "Traceback" not in proc.log()


@pytest.mark.parametrize("fsync", ["file", "off"])
def test_other_fsync_modes_write_and_acknowledge_every_reading(site, fsync):
    pvsimd = site.start_pvsimd(output={"fsync": fsync})
    meter = site.start_meterd("house-a")
    wait_until(lambda: len(site.rows("house-a")) >= 20, timeout=30, message="rows of house-a")
    assert meter.stop(timeout=10) == 0, meter.log()
    assigned = site.assigned("house-a")
    wait_until(lambda: len(site.rows("house-a")) >= assigned, timeout=20)
    assert pvsimd.stop(timeout=10) == 0, pvsimd.log()
    assert f"fsync = {fsync}" in pvsimd.log()
    _assert_contract(site, "house-a", assigned)
    assert queue_depth(site.broker_url, site.queue) == 0  # all acknowledged


def test_daemons_wait_for_an_absent_broker_and_connect_by_themselves(site, proxy):
    proxy.refuse(True)  # nothing answers on the proxy's port yet
    site.daemon_url = proxy.url_for()
    pvsimd = site.start_pvsimd()
    meter = site.start_meterd("house-a")
    wait_until(lambda: pvsimd.log().count("unavailable") >= 2, timeout=20, message="retries")
    wait_until(lambda: meter.log().count("unavailable") >= 2, timeout=20, message="retries")
    assert not site.files("house-a")

    proxy.refuse(False)  # the broker "comes up"
    wait_until(lambda: len(site.rows("house-a")) >= 10, timeout=30, message="rows after start")

    assert meter.stop() == 0
    wait_until(lambda: len(site.rows("house-a")) >= site.assigned("house-a"), timeout=20)
    assert pvsimd.stop() == 0
    _assert_contract(site, "house-a", site.assigned("house-a"))
    for proc in (pvsimd, meter):
        log = proc.log()
        assert "Traceback" not in log
        warnings = [line for line in log.splitlines() if "unavailable" in line]
        assert all(" WARNING " in line for line in warnings)


def test_connections_cut_midway_lose_and_double_nothing(site, proxy):
    site.daemon_url = proxy.url_for()
    pvsimd = site.start_pvsimd()
    meters = [site.start_meterd(house) for house in HOUSES]
    for cut in range(3):
        wait_until(
            lambda n=cut: all(len(site.rows(h)) >= 15 * (n + 1) for h in HOUSES),
            timeout=30,
            message=f"rows before cut {cut}",
        )
        proxy.cut()
    # every meterd connected again, so stopping it publishes what it holds (one stopped
    # while it reconnects keeps its spool for the next start, which this test does not do)
    wait_until(
        lambda: all(m.log().count("connected to") > m.log().count(" lost: ") for m in meters),
        timeout=30,
        message="meterd connected again after the last cut",
    )
    for meter in meters:
        assert meter.stop() == 0
    for house in HOUSES:
        wait_until(lambda h=house: len(site.rows(h)) >= site.assigned(h), timeout=30)
    assert pvsimd.stop() == 0
    for house in HOUSES:
        _assert_contract(site, house, site.assigned(house))
    assert "lost" in pvsimd.log()


def test_pvsimd_restart_keeps_one_header_and_one_row_per_reading(site):
    pvsimd = site.start_pvsimd()
    meter = site.start_meterd("house-a")
    wait_until(lambda: len(site.rows("house-a")) >= 20, timeout=30)
    assert pvsimd.stop() == 0
    pvsimd = site.start_pvsimd()  # readings published meanwhile wait in the queue
    n = len(site.rows("house-a"))
    wait_until(lambda: len(site.rows("house-a")) >= n + 20, timeout=30)
    assert meter.stop() == 0
    wait_until(lambda: len(site.rows("house-a")) >= site.assigned("house-a"), timeout=20)
    assert pvsimd.stop() == 0
    _assert_contract(site, "house-a", site.assigned("house-a"))


def test_meterd_restart_continues_the_sequence(site):
    pvsimd = site.start_pvsimd()
    meter = site.start_meterd("house-b")
    wait_until(lambda: len(site.rows("house-b")) >= 10, timeout=30)
    assert meter.stop() == 0
    first_run = site.assigned("house-b")
    meter = site.start_meterd("house-b")
    wait_until(lambda: len(site.rows("house-b")) >= first_run + 10, timeout=30)
    assert meter.stop() == 0
    wait_until(lambda: len(site.rows("house-b")) >= site.assigned("house-b"), timeout=20)
    assert pvsimd.stop() == 0
    _assert_contract(site, "house-b", site.assigned("house-b"))


@pytest.mark.parametrize("program", ["meterd", "pvsimd"])
def test_sigterm_stops_within_seconds_with_exit_0(site, program):
    proc = site.start_pvsimd() if program == "pvsimd" else site.start_meterd("house-a")
    wait_until(lambda: "ready" in proc.log(), timeout=20, message="ready")
    assert proc.stop(timeout=5) == 0
    assert "stopped" in proc.log()


def test_an_output_directory_that_cannot_be_created_exits_73_in_one_line(site):
    blocker = site.root / "not-a-directory"
    blocker.write_text("a file where the output directory should go\n")
    proc = site.start_pvsimd(output={"directory": blocker / "csv"})
    assert proc.proc.wait(timeout=30) == 73, proc.log()
    errors = [line for line in proc.log().splitlines() if "output directory" in line]
    assert len(errors) == 1 and str(blocker / "csv") in errors[0], proc.log()
    assert "Traceback" not in proc.log()
