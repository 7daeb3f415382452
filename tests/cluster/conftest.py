"""Cluster tier: a three-node RabbitMQ cluster of the tier's own, two shards of pvsimd
with a hot standby each, three meterd, real kills and restarts.

Fixtures: ``cluster`` (session: three nodes on this machine with the consistent-hash
plugin, formed once, ~15 s, shared by the tests: each test leaves it whole), ``rig``
(per test: fresh exchange, queues and directories; torn down even when the test fails:
processes killed, every node running again, queues deleted).

At the end the failover times and figures are printed and, when the whole tier ran,
its section of docs/reliability.md is written (tests/support/reliability_doc.py).
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pvsim import topology
from tests.cluster.harness import (
    BROKER_KEYS,
    FAULT_KINDS,
    INTERVAL,
    METERS,
    ClusterRig,
    ClusterRun,
)
from tests.support import tier_runs
from tests.support.broker_cluster import BrokerCluster
from tests.support.daemons import REPO
from tests.support.reliability_doc import write_section

HERE = Path(__file__).resolve().parent
DOC = REPO / "docs" / "reliability.md"

RUNS: dict[str, ClusterRun] = {}
MACHINE: dict[str, str] = {}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, request):
    c = BrokerCluster(tmp_path_factory.mktemp("cluster"), plugins=(topology.HASH_PLUGIN,))
    try:
        began = time.monotonic()
        c.start()
        MACHINE["formed"] = f"{time.monotonic() - began:.0f} s"
        with contextlib.suppress(Exception):
            MACHINE["rabbitmq"] = c.ctl("version").strip()
        yield c
    finally:
        c.kill()
        for node in c.nodes:  # the data goes; the logs stay when a test failed
            shutil.rmtree(node.mnesia_base, ignore_errors=True)
        if request.session.testsfailed == 0:
            shutil.rmtree(c.base_dir, ignore_errors=True)


@pytest.fixture
def rig(cluster, tmp_path, request):
    for node in cluster.nodes:  # an earlier test failed with a node down
        if not node.is_running():
            node.start()
    cluster.wait_healthy()
    run = RUNS.setdefault(request.node.nodeid, ClusterRun(request.node.nodeid))
    r = ClusterRig(cluster, tmp_path, run)
    try:
        yield r
    finally:
        r.cleanup()
        for node in cluster.nodes:
            if not node.is_running():
                node.start()


# --- collecting the figures ------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    run = RUNS.get(item.nodeid)
    if run is not None:
        tier_runs.record(run, report)


def _times(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f} s"
    return (
        f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f} s "
        f"(min / median / max)"
    )


def _write_doc(runs: list[ClusterRun]) -> None:
    wall = sum(r.seconds for r in runs)
    keys = ("readings", "rows", "lost", "duplicated", "torn")

    def cell(run: ClusterRun, key: str) -> str:
        return "—" if run.figures is None else str(getattr(run.figures, key))

    rows = [
        f"| `{r.name}` | {r.outcome} | {r.seconds:.0f} s | {r.describe_faults()} | "
        + " | ".join(cell(r, k) for k in keys)
        + " |"
        for r in runs
    ]
    totals = {k: sum(getattr(r.figures, k) for r in runs if r.figures) for k in keys}
    rows.append(
        f"| **total** | | {wall:.0f} s | {sum(sum(r.faults.values()) for r in runs)} | "
        + " | ".join(str(totals[k]) for k in keys)
        + " |"
    )
    failover: dict[str, list[float]] = {}
    for r in runs:
        for kind, values in r.failover.items():
            failover.setdefault(kind, []).extend(values)
    baseline = [r.baseline for r in runs if r.baseline is not None]
    times = [
        f"| {kind} | {len(failover.get(kind, []))} | {_times(failover.get(kind, []))} | "
        f"{', '.join(f'{v:.1f}' for v in failover.get(kind, [])) or '—'} |"
        for kind in FAULT_KINDS
    ]
    kinds = [f"- **{kind}**: {text}." for kind, text in FAULT_KINDS.items()]
    text = f"""## A three-node cluster: shards, standbys, failover

Written by `tests/cluster/conftest.py`.

### Last run

{datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")} on a machine with {len(_cpus())} CPUs,
RabbitMQ {MACHINE.get("rabbitmq", "?")} (three nodes of the tier's own, formed in
{MACHINE.get("formed", "?")}), {tier_runs.versions()}; {len(runs)} runs in {wall:.0f} s.

| test | result | time | faults | readings | rows | lost | duplicated | torn |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

### Failover times

From the fault to rows flowing again: the longest any reading sampled around the fault
(from half a second before it) took from its timestamp to its CSV row, as a thread
watching the files saw it (every 50 ms). Without a fault the longest delay was
{_times(baseline)} (a sample every {INTERVAL * 1000:.0f} ms, `flush_interval = 0.05`).

| fault | runs | failover | each run |
|---|---|---|---|
{chr(10).join(times)}

### How a run works

Each test starts, on a cluster of three RabbitMQ nodes of the tier's own (own node
names, ports, data and cookie under a temporary folder; formed with `join_cluster`, the
`rabbitmq_consistent_hash_exchange` plugin enabled), two shards of pvsimd — shard 0's
first, so that the hash ring's buckets are in shard order — each with a standby, all
writing one output directory, then three meterd ({", ".join(METERS)}, a sample every
{INTERVAL * 1000:.0f} ms). With two shards house-j goes to shard 0, house-a and house-c
to shard 1. Every daemon has the three nodes' URLs; `heartbeat = {BROKER_KEYS["heartbeat"]}`,
`retry_initial = {BROKER_KEYS["retry_initial"]}`, `retry_max = {BROKER_KEYS["retry_max"]}`.
After each fault the test waits until rows of readings sampled after it flow for every
meter and every meter's rows are the contiguous range of seqs up to its newest, none
twice. At the end the meters are stopped with SIGTERM (exit 0), the pvsimd are left to
write everything meterd assigned, then stopped (exit 0), and for every meter the seqs
in its CSV files must be exactly 0..next seq - 1: none missing, none twice, no torn
line, the header once per file at line 1, and no traceback in any log. The tests share
the cluster; each leaves it whole (every node running, no quorum queue short of its
members).

The faults:

{chr(10).join(kinds)}

### Reproduce

```sh
scripts/test tests/cluster                              # as CI does
PYTHONPATH=. /usr/bin/python3 -m pytest tests/cluster   # just the tier
```

With rabbitmq-server installed (its plugins include the consistent-hash exchange); the
system broker is not used. About {max(1, round((wall + 20) / 60))} minutes on this machine.
"""
    write_section(DOC, "tests/cluster", text)


def _cpus() -> list[int]:
    import os

    return sorted(os.sched_getaffinity(0))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    runs = [r for r in RUNS.values() if r.outcome != "not run" or r.figures is not None]
    if not runs:
        return
    terminalreporter.write_sep("-", "cluster")
    for run in runs:
        f = run.figures
        figures = (
            "not checked"
            if f is None
            else f"{f.readings} readings, {f.rows} rows, {f.lost} lost, "
            f"{f.duplicated} duplicated, {f.torn} torn"
        )
        failover = "; ".join(
            f"{kind} {', '.join(f'{v:.1f} s' for v in values)}"
            for kind, values in run.failover.items()
        )
        terminalreporter.write_line(
            f"{run.name}: {run.outcome}, {run.seconds:.0f} s; failover: {failover or '—'}; "
            f"{figures}"
        )
    missing = tier_runs.missing(HERE, runs)
    if missing:
        terminalreporter.write_line(
            f"{DOC.relative_to(REPO)} not written: {len(missing)} tests of the tier did not run"
        )
    else:
        _write_doc(runs)
        terminalreporter.write_line(f"{DOC.relative_to(REPO)} written (its cluster section)")
