"""Fault-injection tier: a RabbitMQ node of our own behind a TCP proxy, real daemons, real
kills.  Needs root (pvsimd's disk-full test mounts a tmpfs).

Fixtures: ``broker_node`` and ``proxy`` (session: one node, ~6 s to start), ``rig``
(per test: a fresh Site with its own exchange, queue and directories, the daemons going
through the proxy; torn down even when the test fails: processes killed, tmpfs
unmounted, proxy passing again, node running, queues deleted).

Every test's faults and figures are collected; at the end of the run a one-line summary
is printed and, when the whole tier ran, its section of docs/reliability.md is written
(tests/support/reliability_doc.py; the cluster tier writes another).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fault.harness import FAULT_KINDS, HEARTBEAT, INTERVAL, RETRY_MAX, FaultRun, Rig
from tests.support import tier_runs
from tests.support.broker_node import BrokerNode
from tests.support.daemons import REPO, Site
from tests.support.reliability_doc import write_section
from tests.support.tcp_proxy import TcpProxy

HERE = Path(__file__).resolve().parent
DOC = REPO / "docs" / "reliability.md"

RUNS: dict[str, FaultRun] = {}  # nodeid -> run, in the order the tests ran
MACHINE: dict[str, str] = {}


@pytest.fixture(scope="session")
def broker_node(tmp_path_factory, request):
    node = BrokerNode(tmp_path_factory.mktemp("fault") / "node")
    try:
        node.start()
        with contextlib.suppress(Exception):
            MACHINE["rabbitmq"] = node.ctl("version", timeout=30).stdout.strip()
        yield node
    finally:
        node.kill()
        # the node's data goes; its logs stay for diagnosis when a test failed
        shutil.rmtree(node.mnesia_base, ignore_errors=True)
        if request.session.testsfailed == 0:
            shutil.rmtree(node.base_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def proxy(broker_node):
    with TcpProxy("127.0.0.1", broker_node.amqp_port) as p:
        yield p


@pytest.fixture
def rig(broker_node, proxy, tmp_path, request):
    proxy.resume()
    proxy.refuse(False)
    if not broker_node.is_running():  # an earlier test failed while it was down
        broker_node.start()
    site = Site(root=tmp_path, broker_url=broker_node.url, daemon_url=proxy.url_for())
    run = RUNS.setdefault(request.node.nodeid, FaultRun(request.node.nodeid))
    r = Rig(broker_node, proxy, site, run)
    with contextlib.ExitStack() as cleanup:
        # run in reverse order: delete the queues last, on a running node
        cleanup.callback(site.cleanup)
        cleanup.callback(lambda: broker_node.is_running() or broker_node.start())
        cleanup.callback(proxy.refuse, False)
        cleanup.callback(proxy.resume)
        cleanup.callback(r.unmount)
        cleanup.callback(lambda: [p.kill() for p in site.processes])
        yield r


# --- collecting the figures ------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    run = RUNS.get(item.nodeid)
    if run is not None:
        tier_runs.record(run, report)


def _totals(runs: list[FaultRun]) -> dict[str, int]:
    totals = dict.fromkeys(
        ("faults", "readings", "rows", "dropped", "lost", "duplicated", "torn", "unexpected"), 0
    )
    for run in runs:
        totals["faults"] += sum(run.faults.values())
        if run.figures is not None:
            for key in ("readings", "rows", "dropped", "lost", "duplicated", "torn", "unexpected"):
                totals[key] += getattr(run.figures, key)
    return totals


def _summary_line(runs: list[FaultRun]) -> str:
    t = _totals(runs)
    line = (
        f"fault-injection: {len(runs)} runs, {t['faults']} faults, {t['readings']} readings, "
        f"{t['rows']} rows, {t['dropped']} dropped by the spool bound (reported), "
        f"{t['lost']} lost, {t['duplicated']} duplicated, {t['torn']} torn"
    )
    unchecked = [r.name for r in runs if r.figures is None]
    if unchecked:
        line += f" ({len(unchecked)} runs never reached the check: {', '.join(unchecked)})"
    return line


def _write_doc(runs: list[FaultRun]) -> None:
    t = _totals(runs)
    wall = sum(r.seconds for r in runs)

    def cell(run: FaultRun, key: str) -> str:
        return "—" if run.figures is None else str(getattr(run.figures, key))

    total = " | ".join(
        ["**total**", "", f"{wall:.0f} s"]
        + [
            str(t[k])
            for k in ("faults", "readings", "rows", "dropped", "lost", "duplicated", "torn")
        ]
    )
    rows = [
        f"| `{r.name}` | {r.outcome} | {r.seconds:.0f} s | {r.describe_faults()} | "
        + " | ".join(
            cell(r, k) for k in ("readings", "rows", "dropped", "lost", "duplicated", "torn")
        )
        + " |"
        for r in runs
    ]
    kinds_used = {kind for r in runs for kind in r.faults}
    fault_list = [f"- **{kind}**: {text}." for kind, text in FAULT_KINDS.items()]
    unused = [kind for kind in FAULT_KINDS if kind not in kinds_used]
    if unused:
        fault_list += ["", f"(Not injected in this run: {', '.join(unused)}.)"]
    text = f"""## Fault injection on one node

Written by `tests/fault/conftest.py`.

### Last run

{datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")} on a machine with {os.cpu_count()} CPUs
(`nproc`), RabbitMQ {MACHINE.get("rabbitmq", "?")} (a node of the tier's own),
{tier_runs.versions()}; {len(runs)} runs in {wall:.0f} s.

| test | result | time | faults | readings | rows | dropped | lost | duplicated | torn |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
| {total} |

*readings*: the seqs meterd assigned (its spool's next seq, summed over the three meters);
*rows*: CSV rows written; *dropped*: seqs meterd's spool bound dropped and named in a
WARNING (the only loss the promise allows); *lost*: assigned seqs without a row, less the
dropped ones; *duplicated*: rows beyond
one per seq (or per timestamp); *torn*: lines that are not a complete 6-field row ending
in a newline, and headers that are not exactly once at line 1.

### Reproduce

```sh
scripts/test tests/fault                              # as CI does (installs, then pytest)
PYTHONPATH=. /usr/bin/python3 -m pytest tests/fault   # just the tier
```

As root (the disk-full test mounts a tmpfs), with rabbitmq-server installed; the
system broker is not used. About {max(1, round(wall / 60))} minutes on this machine.

### How a run works

Each test starts pvsimd and three meterd (house-a, house-b, house-c, a sample every
{INTERVAL * 1000:.0f} ms: 150 readings/s) against a RabbitMQ node of the tier's own
(own node name, ports and data directory under a temporary folder; SIGKILLed and
removed at the end), reached through a TCP proxy of ours that can cut, stall and refuse
connections. The daemons use `heartbeat = {HEARTBEAT}`, `retry_initial = 0.2`,
`retry_max = {RETRY_MAX:g}`. Faults are injected while readings flow; between faults the
test waits (with a deadline) for every meter's rows to grow again. At the end the meters
are stopped with SIGTERM (exit 0), pvsimd is left to write everything meterd assigned,
then stopped (exit 0), and for every meter the seqs in its CSV files must be exactly
0..next seq - 1: none missing, none twice, no torn line, the header once per file at
line 1, and no traceback in any log.

The faults:

{chr(10).join(fault_list)}

The combined run injects several kinds in sequence on the same daemons. Not yet covered:
a spool filled to its bound (`[spool] max_bytes` / `max_age`), where meterd drops the
oldest readings by design.
"""
    write_section(DOC, "tests/fault", text)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    runs = [r for r in RUNS.values() if r.outcome != "not run" or r.figures is not None]
    if not runs:
        return
    terminalreporter.write_sep("-", "fault injection")
    for run in runs:
        f = run.figures
        figures = (
            "not checked"
            if f is None
            else f"{f.readings} readings, {f.rows} rows, {f.lost} lost, "
            f"{f.duplicated} duplicated, {f.torn} torn"
            + (f", {f.unexpected} with a seq never assigned" if f.unexpected else "")
        )
        terminalreporter.write_line(
            f"{run.name}: {run.outcome}, {run.seconds:.0f} s; "
            f"faults: {run.describe_faults()}; {figures}"
        )
    missing = tier_runs.missing(HERE, runs)
    if missing:
        terminalreporter.write_line(
            f"{DOC.relative_to(REPO)} not written: {len(missing)} tests of the tier did not run"
        )
    else:
        _write_doc(runs)
        terminalreporter.write_line(f"{DOC.relative_to(REPO)} written")
    terminalreporter.write_line(_summary_line(runs))
