"""Every reading meterd samples ends up in exactly one CSV row, whatever happens between.

Each test runs house-a, house-b, house-c (a sample every 20 ms) and pvsimd through a TCP
proxy to a RabbitMQ node of our own, injects one kind of fault while readings flow (the
last test several in sequence), then ends with ``rig.finish()``: meters stopped with
SIGTERM, pvsimd left to write everything meterd assigned and stopped, and
``assert_exactly_once`` on every meter's CSV files.
"""

from __future__ import annotations

import random
import re
import time

import pytest

from tests.fault.harness import (
    HEARTBEAT,
    HOUSES,
    INTERVAL,
    RETRY_MAX,
    lost_lines,
    seqs_written,
)

pytestmark = pytest.mark.fault


def test_broker_sigkill_and_restart(rig):
    """(1) The broker node is SIGKILLed while readings flow and started again on its data."""
    rig.start()
    rig.wait_progress(50)
    for _ in range(2):
        marks = rig.log_marks()
        rig.kill_broker()
        rig.wait_progress(50, timeout=60)
        for name, text in rig.logs_since(marks).items():
            assert lost_lines(text), f"{name} did not notice the broker going away"
    rig.finish()


def test_broker_unreachable_longer_than_the_backoff_cap(rig):
    """(2) The broker is unreachable (connections cut, new ones refused) for three times
    retry_max: the daemons keep retrying with capped delays and catch up by themselves."""
    rig.start()
    rig.wait_progress(50)
    marks = rig.log_marks()
    rig.broker_unreachable(seconds=3 * RETRY_MAX)
    rig.wait_progress(50, timeout=RETRY_MAX + 20)
    for name, text in rig.logs_since(marks).items():
        retries = [line for line in text.splitlines() if " unavailable: " in line]
        assert len(retries) >= 2, f"{name} retried {len(retries)} times in {3 * RETRY_MAX} s"
        delays = [float(d) for d in re.findall(r"retrying in ([0-9.]+) s", text)]
        assert delays and max(delays) <= RETRY_MAX, f"{name}: delays {delays} above the cap"
        assert all(" WARNING " in line for line in retries), retries
    rig.finish()


def test_connections_cut_mid_publish_and_mid_ack(rig):
    """(3) Every connection is reset eight times while readings flow, each time after a
    seeded random amount of traffic; every other time the traffic is first held in the
    network for a moment, so that publishes, confirms, deliveries and acks are dropped
    in flight."""
    rng = random.Random(3)
    rig.start()
    rig.wait_progress(30)
    marks = rig.log_marks()
    cuts = 8
    for i in range(cuts):
        rig.wait_progress(rng.randint(5, 60))  # the moment: after this much traffic
        rig.cut(hold=rng.uniform(0.05, 0.3) if i % 2 else 0)
    rig.wait_progress(30)
    for name, text in rig.logs_since(marks).items():
        assert len(lost_lines(text)) >= cuts, f"{name} noticed only {len(lost_lines(text))} cuts"
    rig.finish()


def test_stalled_network_longer_than_two_heartbeats(rig):
    """(4) The network forwards nothing for three heartbeat intervals (sockets stay open),
    then forwards again: the dead connections are noticed and replaced."""
    rig.start()
    rig.wait_progress(50)
    marks = rig.log_marks()
    before = rig.row_counts()
    rig.stall(seconds=3 * HEARTBEAT)
    rig.wait_progress(50, timeout=60)
    for name, text in rig.logs_since(marks).items():
        assert lost_lines(text), f"{name} did not notice the stalled connection"
    assert all(rig.row_counts()[m] > before[m] for m in HOUSES)
    rig.finish()


def test_pvsimd_sigkilled_at_random_moments(rig):
    """(5) pvsimd is SIGKILLed six times at seeded random moments and started again, then
    twice more with the acks of rows it had written lost in the network: unflushed rows
    come again and are written once, written ones come again and are dropped as repeats,
    a torn last line is cut off."""
    rng = random.Random(5)
    # flushes (and acks) every 0.5 s: a kill finds rows buffered, and a 0.6 s stall
    # always holds the ack of a flush; debug logs every repeat dropped
    rig.start(output={"flush_interval": 0.5}, logging={"level": "debug"})
    rig.wait_progress(30)
    for _ in range(6):
        rig.wait_progress(rng.randint(5, 80))  # the moment: after this much traffic ...
        time.sleep(rng.uniform(0, 0.5))  # ... plus up to a flush interval (fault timing)
        rig.kill_pvsimd()
    for _ in range(2):
        rig.wait_progress(rng.randint(30, 80))  # right after a flush ...
        time.sleep(rng.uniform(0.1, 0.4))  # ... rows pile up unflushed (fault timing)
        rig.kill_pvsimd_acks_lost()
    rig.wait_progress(30)
    rig.finish()
    repeats = rig.logs()["pvsimd"].count("dropped a repeat")
    assert repeats > 0, "no written-but-unacknowledged row came again: the test missed its aim"


def test_meterd_sigkilled_and_restarted(rig):
    """(6) Each meterd is SIGKILLed three times at seeded random moments and started
    again; its spool carries the sequence on and republishes what the broker had not
    confirmed."""
    rng = random.Random(6)
    rig.start()
    rig.wait_progress(30)
    for _ in range(3):
        for meter in rng.sample(HOUSES, len(HOUSES)):
            rig.wait_progress(rng.randint(5, 40), meters=[meter])  # the moment ...
            time.sleep(rng.uniform(0, INTERVAL))  # ... anywhere in a sample (fault timing)
            written = max(seqs_written(rig.site, meter))
            marks = rig.log_marks()
            rig.kill_meter(meter)
            rig.wait(
                lambda m=meter, k=marks: "next seq" in rig.logs_since(k)[f"meterd-{m}"],
                30,
                f"meterd {meter} restarted",
            )
            text = rig.logs_since(marks)[f"meterd-{meter}"]
            next_seq = int(re.search(r"next seq (\d+)", text).group(1))
            assert next_seq > written, f"{meter}: restarted at seq {next_seq}, {written} written"
    rig.wait_progress(30)
    rig.finish()


def test_pvsimd_disk_full_holds_readings_and_resumes(rig):
    """(7) pvsimd's output directory (a 256 KiB tmpfs) fills up: pvsimd keeps running,
    logs one ERROR for the episode, acknowledges nothing (the queue grows), and resumes
    by itself once space is freed."""
    rig.mount_output("256k")
    rig.start(broker={"prefetch": 100})  # a small prefetch: held readings show in the queue
    rig.wait_progress(20)
    marks = rig.log_marks()
    rig.fill_output(leave=32 * 1024)
    rig.wait(
        lambda: "cannot write CSV files" in rig.logs_since(marks)["pvsimd"],
        30,
        "pvsimd reporting the full disk",
    )
    assert rig.pvsimd.running()
    depths = [rig.queue_depth()]

    def queue_grew() -> bool:
        depths.append(rig.queue_depth())
        return depths[-1] >= depths[0] + 300  # two seconds of readings, none acknowledged

    rig.wait(queue_grew, 30, f"readings piling up in the queue (depths {depths[-5:]})")
    shrunk = [(a, b) for a, b in zip(depths, depths[1:], strict=False) if b < a]
    assert not shrunk, f"the queue shrank while the disk was full: {shrunk}"
    assert rig.pvsimd.running(), rig.pvsimd.log()
    assert all(proc.running() for proc in rig.meters.values())

    rig.remount_output("64m")  # space again
    rig.wait(lambda: "writable again" in rig.logs_since(marks)["pvsimd"], 30, "pvsimd resuming")
    rig.wait(lambda: rig.queue_depth() < 100, 60, "the readings held in the queue written")
    rig.wait_progress(30)
    errors = [line for line in rig.logs_since(marks)["pvsimd"].splitlines() if " ERROR " in line]
    assert len(errors) == 1, f"{len(errors)} ERROR lines for one episode: {errors[:5]}"
    assert "cannot write CSV files" in errors[0]
    rig.finish()


def test_spool_filled_to_its_bound(rig):
    """(8) The broker stays unreachable until every meter's spool ([spool] max_bytes = 4K,
    about 35 readings) has overflowed: meterd keeps sampling, drops the oldest unpublished
    readings and names their seqs in a WARNING (rate-limited), and everything it did not
    report dropped arrives exactly once."""
    rig.meter_overrides = {"spool": {"max_bytes": "4K"}}
    rig.start()
    rig.wait_progress(50)
    rig.run.fault("spool overflow")
    rig.proxy.refuse(True)
    rig.proxy.cut()
    try:
        rig.wait(
            lambda: all("spool full" in rig.logs()[f"meterd-{m}"] for m in HOUSES),
            timeout=30,
            what="every meter reports its spool full",
        )
        # the fault itself: keep the broker away while the spools keep overflowing
        time.sleep(1.5)
    finally:
        rig.proxy.refuse(False)
    rig.wait_progress(50, timeout=30)
    for meter, proc in rig.meters.items():
        assert proc.running(), f"meterd {meter} stopped when its spool filled up"
        warnings = [ln for ln in rig.logs()[f"meterd-{meter}"].splitlines() if "spool full" in ln]
        # one WARNING at once, then at most one per 10 s while the spool stays full
        assert 1 <= len(warnings) <= 3, warnings
    figures = rig.finish()
    assert figures.dropped > 0, "the spool bound was never reached"


def test_combined_faults_on_the_same_daemons(rig):
    """(9) Several kinds of fault in sequence on the same daemons: cuts, a pvsimd
    SIGKILL, a broker SIGKILL, a meterd SIGKILL, a stalled network, a full disk, and the
    broker unreachable for longer than the backoff cap."""
    rng = random.Random(9)
    rig.mount_output("64m")
    rig.start()
    rig.wait_progress(30)

    for hold in (0, 0.2):
        rig.wait_progress(rng.randint(5, 40))
        rig.cut(hold=hold)
    rig.wait_progress(rng.randint(5, 40))
    time.sleep(rng.uniform(0, 0.1))  # fault timing, as in the pvsimd test
    rig.kill_pvsimd()
    rig.wait_progress(30)
    rig.kill_broker()
    rig.wait_progress(30, timeout=60)
    meter = rng.choice(HOUSES)
    rig.kill_meter(meter)
    rig.wait_progress(30)
    rig.stall(seconds=3 * HEARTBEAT)
    rig.wait_progress(30, timeout=60)

    marks = rig.log_marks()
    filler = rig.fill_output(leave=32 * 1024)
    rig.wait(lambda: "cannot write CSV files" in rig.logs_since(marks)["pvsimd"], 30, "disk full")
    depth = rig.queue_depth()
    rig.wait(lambda: rig.queue_depth() >= depth + 150, 30, "readings held in the queue")
    filler.unlink()  # space again
    rig.wait(lambda: "writable again" in rig.logs_since(marks)["pvsimd"], 30, "resuming")
    rig.wait_progress(30, timeout=60)

    rig.broker_unreachable(seconds=3 * RETRY_MAX)
    rig.wait_progress(30, timeout=60)
    rig.cut()
    rig.wait_progress(30)
    rig.finish()
