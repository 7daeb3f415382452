"""pvsim benchmarks: each daemon side by side with a raw pika client on the same broker.

    PYTHONPATH=. /usr/bin/python3 -m bench [--quick] [--runs N] [--only LIST]
                                           [--scaling] [--what-if] [--profile DIR]
                                           [--shards] [--cluster] [--json FILE]

Benchmarks (docs/performance.md explains each method):

  drain    pvsimd draining N preloaded readings vs a raw SelectConnection consumer
  flush    meterd publishing a spool backlog vs raw unconfirmed publishing
  steady   pvsimd under R readings/s from M meters: CPU, RSS, descriptors, latency
  idle     an idle meterd's RSS and CPU
  scaling  (--scaling) drain at 1 000 / 10 000 / 50 000 meters, steady at
           250 / 500 / 1 000 readings/s
  whatif   (--what-if) the drain again with config levers: [output]
           max_open_files = 256, fsync = file, fsync = off (what file handling costs)
  profile  (--profile DIR) py-spy profiles of pvsimd's drain and meterd's flush, and
           the micro-benchmarks bench.pipeline and bench.fsync_strategies
  shards   (--shards) the drain with 1 shard and with 2 (two pvsimd, one shared output
           directory) on a RabbitMQ node of its own with the consistent-hash plugin,
           and the broker's CPU per reading and share; --cluster: also on three nodes

The default is drain,flush,steady,idle (about 11 minutes; --quick about 1).  The
daemons run from a snapshot of pvsim/, pvsimd/, meterd/ taken at the start (--code DIR
to measure another tree).  Broker objects are named bench.<random> and deleted at the
end, processes stopped, temporary directories removed.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.common import (
    REPO,
    SYSTEM_BROKER,
    Broker,
    Context,
    Result,
    Snapshot,
    default_of,
    dump_json,
    machine,
    say,
    settle_filesystem,
)

DEFAULT = ("drain", "flush", "steady", "idle")
ALL = (*DEFAULT, "scaling", "whatif", "profile", "shards")
WHAT_IF = {
    "prefetch=2000": {"broker": {"prefetch": 2000}},
    "max_open_files=256": {"output": {"max_open_files": 256}},
    "fsync=file": {"output": {"fsync": "file"}},
    "fsync=off": {"output": {"fsync": "off"}},
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python3 -m bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 20 000 readings, 10 000 flushed, steady 10 s, idle 10 s, "
        "1 run unless --runs",
    )
    ap.add_argument("--runs", type=int, help="runs per figure, the median reported (default 3)")
    ap.add_argument(
        "--only",
        default=",".join(DEFAULT),
        help=f"comma-separated, of {','.join(ALL)} (default: {','.join(DEFAULT)})",
    )
    ap.add_argument(
        "--scaling",
        action="store_true",
        help="also: drain at 1 000/10 000/50 000 meters, steady at 250/500/1000/s",
    )
    ap.add_argument(
        "--what-if",
        action="store_true",
        help="also: the drain with max_open_files=256, fsync=file, fsync=off",
    )
    ap.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="also: profile pvsimd's drain and meterd's flush with py-spy, run "
        "bench.pipeline and bench.fsync_strategies; all into DIR",
    )
    ap.add_argument(
        "--shards",
        action="store_true",
        help="also: the drain with 1 and with 2 shards on a node of its own (bench/shards.py)",
    )
    ap.add_argument(
        "--cluster",
        action="store_true",
        help="with --shards: also on a three-node cluster of its own (replication's cost)",
    )
    ap.add_argument("--meters", type=int, default=10_000, help="drain and steady (10 000)")
    ap.add_argument("--readings", type=int, help="drain (200 000; quick 20 000)")
    ap.add_argument("--flush-readings", type=int, help="flush (100 000; quick 10 000)")
    ap.add_argument("--rate", type=float, default=1000, help="steady readings/s (1000)")
    ap.add_argument("--seconds", type=float, help="steady duration (60; quick 10)")
    ap.add_argument("--idle-seconds", type=float, help="idle meterd (30; quick 10)")
    ap.add_argument(
        "--scaling-readings",
        type=int,
        help="drain readings per meter count in --scaling (100 000; quick 20 000)",
    )
    ap.add_argument(
        "--ts",
        choices=("grid", "now"),
        default="grid",
        help="steady: stamp readings on the interval grid as meterd does (default) "
        "or with the publish time (defeats pvsimd's per-timestamp context)",
    )
    ap.add_argument(
        "--broker", default=SYSTEM_BROKER, help=f"broker URL ({SYSTEM_BROKER.replace('%', '%%')})"
    )
    ap.add_argument(
        "--own-broker",
        action="store_true",
        help="start a throwaway RabbitMQ node (tests/support/broker_node.py)",
    )
    ap.add_argument(
        "--code",
        type=Path,
        default=REPO,
        help="tree holding pvsim/, pvsimd/, meterd/ (default: this clone)",
    )
    ap.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter for the daemons and workers (default: this one)",
    )
    ap.add_argument("--py-spy", help="py-spy binary (default: PATH, then .cache/venv-*/bin)")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where the temporary directory goes (a disk, not tmpfs: fsync counts)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument(
        "--settle-us",
        type=float,
        default=150.0,
        help="before starting, wait until creating a file costs at most this (150 µs)",
    )
    ap.add_argument(
        "--settle-wait", type=float, default=360.0, help="...but at most this long (360 s)"
    )
    ap.add_argument("--json", type=Path, help="write all figures to this file")
    a = ap.parse_args(argv)
    a.runs = a.runs or (1 if a.quick else 3)
    a.readings = a.readings or (20_000 if a.quick else 200_000)
    a.flush_readings = a.flush_readings or (10_000 if a.quick else 100_000)
    a.seconds = a.seconds or (10.0 if a.quick else 60.0)
    a.idle_seconds = a.idle_seconds or (10.0 if a.quick else 30.0)
    a.scaling_readings = a.scaling_readings or (20_000 if a.quick else 100_000)
    a.only = [x.strip() for x in a.only.split(",") if x.strip()]
    a.only += [
        x
        for x, on in (
            ("scaling", a.scaling),
            ("whatif", a.what_if),
            ("profile", a.profile is not None),
            ("shards", a.shards or a.cluster),
        )
        if on and x not in a.only
    ]
    unknown = set(a.only) - set(ALL)
    if unknown:
        ap.error(f"--only: unknown {', '.join(sorted(unknown))}")
    return a


def find_py_spy(given: str | None) -> str | None:
    if given:
        return given
    found = shutil.which("py-spy")
    if found:
        return found
    for venv in ("venv-bench", "venv-pypi"):
        p = REPO / ".cache" / venv / "bin" / "py-spy"
        if p.exists():
            return str(p)
    return None


# --- targets -------------------------------------------------------------------------------


def check(results: dict[str, Result], max_open: int) -> list[tuple[str, str, str, bool]]:
    """(target, measured, limit, passed) for every target of the issue that was measured."""
    rows: list[tuple[str, str, str, bool]] = []
    if "drain" in results:
        m = results["drain"].medians()
        rows.append(
            ("pvsimd drain ≥ 0.6 × raw consumer", f"{m['ratio']:.2f} ×", "0.6 ×", m["ratio"] >= 0.6)
        )
        rows.append(
            (
                "pvsimd drain ≥ 15 000 readings/s",
                f"{m['pvsimd_rate']:,.0f}/s",
                "15,000/s",
                m["pvsimd_rate"] >= 15_000,
            )
        )
    if "flush" in results:
        m = results["flush"].medians()
        rows.append(
            (
                "meterd flush ≥ 0.5 × raw unconfirmed publish",
                f"{m['ratio']:.2f} ×",
                "0.5 ×",
                m["ratio"] >= 0.5,
            )
        )
    if "steady" in results:
        m = results["steady"].medians()
        rows.append(
            (
                "steady: pvsimd CPU ≤ 15 % of one core",
                f"{m['cpu_pct']:.1f} %",
                "15 %",
                m["cpu_pct"] <= 15,
            )
        )
        rows.append(
            ("steady: latency p99 ≤ 250 ms", f"{m['p99_ms']:.0f} ms", "250 ms", m["p99_ms"] <= 250)
        )
        rows.append(
            (
                "steady: open CSV files ≤ max_open_files",
                f"{m['csv_fds_max']:.0f}",
                f"{max_open}",
                m["csv_fds_max"] <= max_open,
            )
        )
        rows.append(
            (
                "steady: pvsimd RSS ≤ 60 MB",
                f"{m['rss_peak_mb']:.1f} MB",
                "60 MB",
                m["rss_peak_mb"] <= 60,
            )
        )
    if "idle" in results:
        m = results["idle"].medians()
        rows.append(
            ("idle meterd RSS ≤ 30 MB", f"{m['rss_mb']:.1f} MB", "30 MB", m["rss_mb"] <= 30)
        )
        rows.append(
            (
                "idle meterd CPU ~0 % (≤ 0.5 %)",
                f"{m['cpu_pct']:.2f} %",
                "0.5 %",
                m["cpu_pct"] <= 0.5,
            )
        )
    return rows


def fmt(v: float, unit: str = "", digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:,.{digits}f}{unit}"


def summary(results: dict[str, Result]) -> str:
    out = ["| benchmark | figure | pvsimd / meterd | raw pika | ratio |", "|---|---|---|---|---|"]
    if (r := results.get("drain")) is not None:
        m = r.medians()
        out.append(
            f"| drain ({r.info['readings']:,} from {r.info['meters']:,} meters) | "
            f"readings/s | {fmt(m['pvsimd_rate'])} | {fmt(m['raw_rate'])} | "
            f"{fmt(m['ratio'], digits=2)} |"
        )
        out.append(
            f"| | CPU µs per reading | {fmt(m['pvsimd_cpu_us'])} | "
            f"{fmt(m['raw_cpu_us'])} | {fmt(m['pvsimd_cpu_us'] / m['raw_cpu_us'], digits=1)}"
            f" × cost |"
        )
    if (r := results.get("flush")) is not None:
        m = r.medians()
        out.append(
            f"| flush ({r.info['readings']:,} spooled) | readings/s into the queue | "
            f"{fmt(m['meterd_rate'])} | {fmt(m['raw_rate'])} (select), "
            f"{fmt(m['blocking_rate'])} (blocking) | {fmt(m['ratio'], digits=2)} "
            f"({fmt(m['ratio_blocking'], digits=2)}) |"
        )
        out.append(
            f"| | CPU µs per reading | {fmt(m['meterd_cpu_us'])} | "
            f"{fmt(m['raw_cpu_us'])} (select), {fmt(m['blocking_cpu_us'])} (blocking) | |"
        )
        out.append(f"| | start-up (spool recovery) | {fmt(m['meterd_startup_s'], ' s', 1)} | | |")
    for key in [k for k in results if k.startswith("steady")]:
        r = results[key]
        m = r.medians()
        label = (
            f"{key} ({r.info['meters']:,} meters, {r.info['rate']:g}/s, {r.info['duration']:g} s)"
        )
        out.append(f"| {label} | CPU of one core | {fmt(m['cpu_pct'], ' %', 1)} | | |")
        out.append(
            f"| | latency p50 / p90 / p99 / max | {fmt(m['p50_ms'])} / "
            f"{fmt(m['p90_ms'])} / {fmt(m['p99_ms'])} / {fmt(m['max_ms'])} ms | | |"
        )
        out.append(
            f"| | first round (day files created): CPU, latency p50 / p99 / max | "
            f"{fmt(m['first_cpu_pct'], ' %', 1)}, {fmt(m['first_p50_ms'])} / "
            f"{fmt(m['first_p99_ms'])} / {fmt(m['first_max_ms'])} ms | | |"
        )
        out.append(
            f"| | RSS end / peak | {fmt(m['rss_end_mb'], ' MB', 1)} / "
            f"{fmt(m['rss_peak_mb'], ' MB', 1)} | | |"
        )
        out.append(
            f"| | descriptors max (on CSV files) | {fmt(m['fds_max'])} "
            f"({fmt(m['csv_fds_max'])}) | | |"
        )
    if (r := results.get("idle")) is not None:
        m = r.medians()
        out.append(
            f"| idle meterd ({r.info['seconds']:g} s) | RSS / CPU | "
            f"{fmt(m['rss_mb'], ' MB', 1)} / {fmt(m['cpu_pct'], ' %', 2)} | | |"
        )
        if "rss_off_mb" in m:
            out.append(
                f"| | RSS with `[metrics] listen` empty | {fmt(m['rss_off_mb'], ' MB', 1)} | | |"
            )
    for key in [k for k in results if k.startswith("shards")]:
        r = results[key]
        m = r.medians()
        where = f"{r.info['nodes']} broker node(s)"
        out.append(
            f"| {key} ({r.info['readings']:,} from {r.info['meters']:,} meters, {where}) | "
            f"readings/s, 1 shard / 2 shards | {fmt(m['s1_rate'])} / {fmt(m['s2_rate'])} "
            f"(× {fmt(m['speedup'], digits=2)}) | | |"
        )
        out.append(
            f"| | pvsimd CPU µs per reading, 1 / 2 shards | {fmt(m['s1_pvsimd_cpu_us'])} / "
            f"{fmt(m['s2_pvsimd_cpu_us'])} | | |"
        )
        out.append(
            f"| | broker CPU µs per reading: taking it in (preload), handing it out "
            f"(drain, 1 / 2 shards) | {fmt(m['s1_broker_preload_us'])}, "
            f"{fmt(m['s1_broker_drain_us'])} / {fmt(m['s2_broker_drain_us'])} | | |"
        )
        out.append(
            f"| | broker's share of the drain's CPU (of the machine), 1 / 2 shards | "
            f"{fmt(m['s1_broker_share_pct'], ' %')} ({fmt(m['s1_broker_machine_pct'], ' %')})"
            f" / {fmt(m['s2_broker_share_pct'], ' %')} "
            f"({fmt(m['s2_broker_machine_pct'], ' %')}) | | |"
        )
        pubs = r.info.get("publishers")
        if pubs:
            out.append(
                f"| | {pubs['connections']} publishers with confirms: broker CPU µs per "
                f"reading, kB per connection | {fmt(pubs['broker_publish_us'])}, "
                f"{fmt(pubs['connection_kb'])} | | |"
            )
        nodes = sorted({k.split("_")[1] for k in m if k.startswith("s1_node")})
        for node in nodes:
            out.append(
                f"| | {node}: CPU µs per reading in, out (1 shard) | "
                f"{fmt(m[f's1_{node}_preload_us'])}, {fmt(m[f's1_{node}_drain_us'])} | | |"
            )
    for key in [k for k in results if k.startswith(("drain-", "whatif"))]:
        r = results[key]
        m = r.medians()
        out.append(
            f"| {key} ({r.info['readings']:,} readings) | readings/s, CPU µs each | "
            f"{fmt(m['pvsimd_rate'])}, {fmt(m['pvsimd_cpu_us'])} µs | "
            f"{fmt(m['raw_rate'])}, {fmt(m['raw_cpu_us'])} µs | "
            f"{fmt(m['ratio'], digits=2)} |"
        )
    return "\n".join(out)


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    t_start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="pvsim-bench-", dir=a.workdir))
    node = None
    broker = None

    def cleanup() -> None:
        if broker is not None:
            broker.cleanup()
        if node is not None:
            with contextlib.suppress(Exception):
                node.kill()
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        snapshot = Snapshot.take(a.code, workdir / "code")
        snapshot.activate()
        url = a.broker
        if a.own_broker:
            from tests.support.broker_node import BrokerNode

            node = BrokerNode(workdir / "node")
            node.start()
            url = node.url
        broker = Broker(url)
        broker.channel()
        ctx = Context(snapshot, broker, url, workdir, python=a.python, py_spy=find_py_spy(a.py_spy))
        info = machine()
        info.update(
            rabbitmq=broker.version,
            broker=url.split("@")[-1],
            code=str(a.code),
            snapshot=snapshot.digest,
            git_head=snapshot.git_head,
            git_dirty=snapshot.git_dirty,
            date=datetime.now().isoformat(timespec="seconds"),
            python_daemons=a.python,
            create_us=settle_filesystem(workdir, a.settle_us, a.settle_wait),
        )
        say(
            f"pvsim bench: {info['date']}; {info['nproc']} × {info['cpu']}, {info['ram_gb']} GB; "
            f"Python {info['python']}, pika {info['pika']}, RabbitMQ {info['rabbitmq']} at "
            f"{info['broker']}"
        )
        say(
            f"code: {a.code} (HEAD {snapshot.git_head}"
            f"{', with uncommitted changes' if snapshot.git_dirty else ''}), snapshot "
            f"{snapshot.digest}; workdir {workdir}; creating a file there: "
            f"{info['create_us']:.0f} µs"
        )
        max_open = int(default_of("pvsimd.settings", "output", "max_open_files"))
        results: dict[str, Result] = {}
        from bench import drain, flush, idle, steady

        if "drain" in a.only:
            results["drain"] = drain.run(ctx, a.runs, a.meters, a.readings)
        if "flush" in a.only:
            results["flush"] = flush.run(ctx, a.runs, a.flush_readings)
        if "steady" in a.only:
            results["steady"] = steady.run(ctx, a.runs, a.meters, a.rate, a.seconds, ts_mode=a.ts)
        if "idle" in a.only:
            results["idle"] = idle.run(ctx, a.runs, a.idle_seconds)
        if "whatif" in a.only:
            for name, overrides in WHAT_IF.items():
                results[f"whatif {name}"] = drain.run(
                    ctx,
                    1 if a.quick else a.runs,
                    a.meters,
                    a.readings,
                    name=f"whatif {name}",
                    overrides=overrides,
                )
        if "scaling" in a.only:
            scale_runs = 1 if a.quick else max(1, a.runs)
            for meters in (1_000, 10_000, 50_000):
                readings = max(a.scaling_readings, meters)
                results[f"drain-{meters}"] = drain.run(
                    ctx, scale_runs, meters, readings, name=f"drain-{meters}"
                )
            for rate in (250, 500, 1000):
                results[f"steady-{rate}"] = steady.run(
                    ctx,
                    scale_runs,
                    int(rate * 10),
                    rate,
                    10.0 if a.quick else 30.0,
                    name=f"steady-{rate}",
                    ts_mode=a.ts,
                )
        if "shards" in a.only:
            from bench import shards

            for cluster in (False, True) if a.cluster else (False,):
                nodes = shards.start_nodes(workdir, cluster)  # killed below
                try:
                    shard_url = nodes[0].url
                    shard_ctx = Context(
                        snapshot, Broker(shard_url), shard_url, workdir, python=a.python
                    )
                    name = "shards-cluster" if cluster else "shards"
                    results[name] = shards.run(
                        shard_ctx, nodes, a.runs, a.meters, a.readings, name=name
                    )
                    conns = 200 if a.quick else 1000
                    say(f"[{name}] {conns} publishers with confirms, one reading each a round")
                    figures = shards.publishers(shard_ctx, nodes, conns, 5 if a.quick else 20)
                    say(
                        f"  broker {figures['broker_publish_us']:.0f} µs CPU per reading, "
                        f"{figures['connection_kb']:.0f} kB per connection, "
                        f"{figures['rate']:,.0f} readings/s (50 confirms in flight)"
                    )
                    results[name].info["publishers"] = figures
                    shard_ctx.broker.cleanup()
                finally:
                    for shard_node in nodes:  # not "node": that is --own-broker's
                        with contextlib.suppress(Exception):
                            shard_node.kill()
        profiles: dict[str, str] = {}
        if "profile" in a.only:
            from bench import profiling

            a.profile = a.profile or workdir / "profiles"
            a.profile.mkdir(parents=True, exist_ok=True)
            for name, fn in (
                ("pvsimd-drain", lambda p: drain.profile(ctx, a.meters, a.readings, p)),
                ("meterd-flush", lambda p: flush.profile(ctx, a.flush_readings, p)),
            ):
                raw = a.profile / f"{name}.collapsed"
                fn(raw)
                text = profiling.report(raw, top=30)
                (a.profile / f"{name}.txt").write_text(text + "\n")
                profiles[name] = text
                say(text)
            for module, args in (
                ("pipeline", ["--code", str(snapshot.path)]),
                ("fsync_strategies", ["--dir", str(workdir)]),
            ):
                say(f"[profile] bench.{module}")
                proc = subprocess.run(
                    [a.python, "-m", f"bench.{module}", *args],
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                    env=ctx.worker_env(),
                    timeout=600,
                )
                text = proc.stdout + proc.stderr
                (a.profile / f"{module}.txt").write_text(text)
                profiles[module] = text
                say(text)

        say("")
        say(f"## Results (median of {a.runs} run(s); code snapshot {snapshot.digest})")
        say(summary(results))
        say("")
        say("## Targets")
        if a.quick:
            say(
                "(--quick is a smoke run: with 2 readings per meter and 10 s of steady "
                "state, creating the day files dominates; judge the targets on a full run)"
            )
        say("| target | measured | limit | |")
        say("|---|---|---|---|")
        for target, measured, limit, ok in check(results, max_open):
            say(f"| {target} | {measured} | {limit} | {'pass' if ok else 'FAIL'} |")
        say(f"\n(total {time.monotonic() - t_start:.0f} s)")
        if a.json is not None:
            dump_json(
                a.json,
                {
                    "machine": info,
                    "args": {k: str(v) for k, v in vars(a).items()},
                    "results": {k: r.to_json() for k, r in results.items()},
                    "profiles": profiles,
                },
            )
        return 0
    except KeyboardInterrupt:
        say("bench: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
