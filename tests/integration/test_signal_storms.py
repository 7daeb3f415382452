"""Storms of SIGINT, SIGTERM and SIGHUP against the real daemons: each ends in a clean
stop (exit 0, "stopped" logged, no traceback) within the deadline, and nothing is lost
or doubled on the way.

A terminal's Ctrl-C and a script's or systemd's SIGTERM often arrive together; a signal
handler that took a lock deadlocked when the second arrived inside the first (issue 17).
Each storm is one or two bursts of 1-40 signals in random order, sent as fast as
``kill(2)`` goes, a random moment after the daemon is ready — so they land while it
runs, drains and stops.  100 storms per daemon, four sites in parallel; the seed is
printed and ``PVSIM_STORM_SEED`` replays a run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest

from meterd.spool import Spool
from tests.support.daemons import DaemonProcess, Site
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

STORMS = 100
WORKERS = 4
STOP_DEADLINE_S = 20.0  # the daemons' own drain timeouts are 5 s (meterd) and 15 s (pvsimd)
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SEED = int(os.environ.get("PVSIM_STORM_SEED", random.SystemRandom().randrange(1 << 32)))


def _storm(proc: DaemonProcess, rng: random.Random) -> str:
    """Send one storm; what was sent, for the report."""
    bursts = [
        [rng.choice(SIGNALS) for _ in range(rng.randint(1, 40))] for _ in range(rng.randint(1, 2))
    ]
    if not any(s != signal.SIGHUP for burst in bursts for s in burst):
        bursts[-1].insert(rng.randrange(len(bursts[-1]) + 1), rng.choice(SIGNALS[:2]))
    time.sleep(rng.uniform(0, 0.3))  # somewhere in the running daemon's life
    for i, burst in enumerate(bursts):
        if i:
            time.sleep(rng.uniform(0, 0.2))  # the second one while it drains or stops
        for signum in burst:
            os.kill(proc.pid, signum)
    return " | ".join(" ".join(signal.Signals(s).name[3:] for s in burst) for burst in bursts)


def _weather(site: Site, program: str, config, storms: int, rng: random.Random) -> list[str]:
    """Start ``program`` and storm it, ``storms`` times in a row; the failures."""
    failures = []
    for n in range(storms):
        proc = site.start(program, config, name=f"{program}-storm{n}")
        wait_until(lambda p=proc: "ready:" in p.log() or not p.running(), timeout=30)
        if not proc.running():
            failures.append(f"{program} storm {n}: exited before it was ready:\n{proc.log()}")
            continue
        sent = _storm(proc, rng)
        started = time.monotonic()
        try:
            code = proc.proc.wait(timeout=STOP_DEADLINE_S)
        except Exception:
            proc.signal(signal.SIGABRT)  # faulthandler is not on: at least a core/trace
            proc.kill()
            failures.append(f"{program} storm {n} ({sent}): HUNG\n{proc.log()[-3000:]}")
            continue
        log = proc.log()
        took = time.monotonic() - started
        if code != 0 or "stopped" not in log or "Traceback" in log:
            failures.append(
                f"{program} storm {n} ({sent}): exit {code}, {took:.1f}s\n{log[-3000:]}"
            )
    return failures


def _bound_queue(site: Site) -> None:
    """The exchange and a queue bound to it, so meterd's readings are routed and confirmed."""
    conn = pika.BlockingConnection(pika.URLParameters(site.broker_url))
    try:
        ch = conn.channel()
        ch.exchange_declare(site.exchange, "topic", durable=True)
        ch.queue_declare(site.queue, durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_bind(site.queue, site.exchange, "reading.*")
    finally:
        conn.close()


@pytest.fixture
def sites(tmp_path, local_broker):
    made = [Site(root=tmp_path / f"site{i}", broker_url=local_broker) for i in range(WORKERS)]
    for s in made:
        s.root.mkdir()
    yield made
    for s in made:
        s.cleanup()


def _run(sites, worker) -> None:  # noqa: ANN001
    print(f"storm seed {SEED} (PVSIM_STORM_SEED={SEED} replays it)")
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(worker, sites, [random.Random(SEED + i) for i in range(WORKERS)]))
    failures = [f for r in results for f in r]
    print(f"{STORMS} storms in {time.monotonic() - started:.1f}s, {len(failures)} failed")
    assert not failures, f"seed {SEED}:\n" + "\n\n".join(failures[:3])


def test_storms_against_meterd_end_in_a_clean_stop(sites):
    """meterd samples every 20 ms and publishes to a bound queue; each storm stops it,
    the next start continues its sequence; in the end every seq it took is in the queue
    or still in its spool."""

    def worker(site: Site, rng: random.Random) -> list[str]:
        _bound_queue(site)
        meter = f"storm-{site.root.name}"
        config = site.meterd_config(meter, interval=0.02, broker={"drain_timeout": 5})
        failures = _weather(site, "meterd", config, STORMS // WORKERS, rng)
        assigned = site.assigned(meter)
        seqs = _queued_seqs(site) + _spooled_seqs(site, meter)  # sent, or kept to send
        # (one published but not yet confirmed at a stop is both: pvsimd drops repeats)
        if set(seqs) != set(range(assigned)):
            missing = sorted(set(range(assigned)) - set(seqs))[:10]
            failures.append(f"meterd {meter}: {assigned} readings, missing {missing}")
        return failures

    _run(sites, worker)


def _queued_seqs(site: Site) -> list[int]:
    conn = pika.BlockingConnection(pika.URLParameters(site.broker_url))
    seqs = []
    try:
        ch = conn.channel()
        while True:
            method, _props, body = ch.basic_get(site.queue, auto_ack=True)
            if method is None:
                return seqs
            seqs.append(json.loads(body)["seq"])
    finally:
        conn.close()


def _spooled_seqs(site: Site, meter: str) -> list[int]:
    spool = Spool(site.state / meter / "spool", fsync=False)
    spool.open()
    try:
        return [seq for seq, _body in spool.records_from(0, 1 << 30)]
    finally:
        spool.close()


def test_storms_against_pvsimd_end_in_a_clean_stop(sites):
    """pvsimd consumes from a meterd sampling every 20 ms; each storm stops it; in the end
    every reading the meter took is a row, exactly once."""

    def worker(site: Site, rng: random.Random) -> list[str]:
        meter = f"storm-{site.root.name}"
        config = site.pvsimd_config()
        first = site.start("pvsimd", config, name="pvsimd-first")  # declares the queue
        wait_until(lambda: "ready:" in first.log(), timeout=30)
        meterd = site.start_meterd(meter, interval=0.02)
        failures = [] if first.stop(STOP_DEADLINE_S) == 0 else [first.log()[-2000:]]
        failures += _weather(site, "pvsimd", config, STORMS // WORKERS, rng)
        if meterd.stop(STOP_DEADLINE_S) != 0:
            failures.append(f"meterd: {meterd.log()[-2000:]}")
        assigned = site.assigned(meter)
        last = site.start("pvsimd", config, name="pvsimd-last")
        try:
            wait_until(lambda: len(site.rows(meter)) >= assigned, timeout=60)
        except AssertionError as exc:
            failures.append(f"pvsimd last run: {exc}")
        if last.stop(STOP_DEADLINE_S) != 0:
            failures.append(f"pvsimd last run: {last.log()[-2000:]}")
        seqs = site.seqs(meter)
        if sorted(seqs) != list(range(assigned)):
            failures.append(
                f"pvsimd {meter}: {assigned} readings, {len(seqs)} rows, "
                f"{len(seqs) - len(set(seqs))} doubled"
            )
        return failures

    _run(sites, worker)
