"""Benchmark 1: pvsimd draining a preloaded queue, against a raw pika consumer.

N valid readings from M meters on a 10 s grid (all meters at t, then all at t+10 s, ...,
as they arrive from meters sampling on the same grid) are published, with meterd's
properties, into a queue declared exactly as pvsimd declares it.  Then either

* **pvsimd** (its defaults: prefetch 1000, fsync batch, flush_interval 0.1,
  max_open_files 16384, verify_sender on), with the meters' directories already there
  (an installation that has seen these meters before) but not their day files, drains
  it: from its "consuming" log line to the moment all N rows are in the CSV files —
  the newest CSV mtime, found once the queue has no ready messages left and a count
  of the rows (every file read) reaches N.
  pvsimd acknowledges right after that last write (and its fsync).  Afterwards the
  queue and the dead-letter queue must be empty and the row count exactly N;
* or the **raw consumer** (bench/worker_consume.py) takes the same messages with the
  same prefetch, parses the JSON and acks in pvsimd's batches (prefetch/4), writing
  nothing: from basic_consume to its last ack.

Each run preloads the queue twice (once per side); the side that goes first
alternates from run to run.  CPU seconds (utime+stime from /proc) are recorded too:
CPU per reading is steadier than a rate on a shared machine.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import (
    Context,
    Result,
    count_rows,
    cpu_seconds,
    cpu_split,
    default_of,
    loadavg,
    make_meter_directories,
    meter_id,
    meterd_properties,
    preload,
    say,
    sender_map_file,
    status_kb,
    unique,
)

BASE_TS = datetime(2025, 6, 21, 8, 0, tzinfo=UTC)  # 10:00 in Berlin: the sun is up


def build_messages(
    meters: int, readings: int, interval: float = 10.0
) -> list[tuple[str, bytes, object]]:
    from pvsim import wire

    messages: list[tuple[str, bytes, object]] = []
    r = 0
    while len(messages) < readings:
        ts = BASE_TS + timedelta(seconds=interval * r)
        for i in range(meters):
            if len(messages) == readings:
                break
            m = meter_id(i)
            power = ((i * 7919 + r * 104729) % 90000) / 10
            body = wire.encode(wire.Reading(m, ts, power, r))
            messages.append((wire.routing_key(m), body, meterd_properties(m, r)))
        r += 1
    return messages


class Drain:
    def __init__(self, ctx: Context, meters: int, readings: int, tag: str = "drain"):
        self.ctx = ctx
        self.meters = meters
        self.readings = readings
        self.exchange = unique("bench.readings")
        self.queue = unique("bench.pvsimd")
        self.dlq = self.queue + ".invalid"
        self.dir = ctx.workdir / unique(tag)
        self.dir.mkdir()
        self.sender_map = sender_map_file(self.dir / "senders", meters)
        t = time.perf_counter()
        self.messages = build_messages(meters, readings)
        say(f"  built {readings} messages for {meters} meters in {time.perf_counter() - t:.1f} s")
        ctx.broker.declare_readings(self.exchange, self.queue, self.dlq)

    def fill(self) -> None:
        broker = self.ctx.broker
        broker.purge(self.queue)
        took = preload(
            self.ctx.url,
            self.exchange,
            self.messages,
            lambda: broker.wait_depth(self.queue, self.readings, timeout=300, interval=0.2),
        )
        depth = broker.depth(self.queue)
        if depth != self.readings:
            raise RuntimeError(f"preloaded {depth} messages, expected {self.readings}")
        say(f"  preloaded {self.readings} in {took:.1f} s")

    # --- the two sides ---------------------------------------------------------------

    def raw(self, prefetch: int) -> dict[str, float]:
        self.fill()
        load = loadavg()
        from pvsimd.service import ack_batch  # the snapshot's

        out = self.ctx.worker(
            "worker_consume", self.ctx.url, self.queue, self.readings, prefetch, ack_batch(prefetch)
        )
        secs = out["end"] - out["start"]
        left = self.ctx.broker.depth(self.queue)
        if left:
            raise RuntimeError(f"raw consumer left {left} messages")
        return {
            "raw_s": secs,
            "raw_rate": self.readings / secs,
            "raw_cpu_us": out["cpu"] / self.readings * 1e6,
            "raw_load": load,
        }

    def pvsimd(
        self,
        run: int,
        profile: Path | None = None,
        idle: bool = False,
        overrides: dict[str, dict[str, object]] | None = None,
    ) -> dict[str, float]:
        self.fill()
        ctx = self.ctx
        out_dir = self.dir / f"csv-{run}"
        make_meter_directories(out_dir, self.meters)
        config = ctx.pvsimd_ini(
            self.dir / "pvsimd.ini",
            exchange=self.exchange,
            queue=self.queue,
            output_dir=out_dir,
            sender_map=self.sender_map,
            **(overrides or {}),
        )
        load = loadavg()
        d = ctx.daemon("pvsimd", config, self.dir / f"pvsimd-{run}.log")
        spy = None
        try:
            t_ready = d.wait_for_log(r"consuming from queue")
            cpu0 = cpu_seconds(d.pid)
            user0, sys0 = cpu_split(d.pid)
            if profile is not None:
                spy = start_py_spy(ctx, d.pid, profile, idle)
            deadline = time.monotonic() + 900
            while ctx.broker.depth(self.queue) > 0:
                _check(d, deadline)
                time.sleep(0.05)
            while True:
                rows, files, newest = count_rows(out_dir)
                if rows >= self.readings:
                    break
                _check(d, deadline)
                time.sleep(0.05)
            t_seen = time.time()
            cpu1 = cpu_seconds(d.pid)
            user1, sys1 = cpu_split(d.pid)
            hwm = status_kb(d.pid, "VmHWM")
        finally:
            rc = d.stop()
            if spy is not None:
                stop_py_spy(spy)
        if rc != 0:
            raise RuntimeError(f"pvsimd exited with {rc}:\n{d.log()[-2000:]}")
        rows_after, _, _ = count_rows(out_dir)
        left, dead = ctx.broker.depth(self.queue), ctx.broker.depth(self.dlq)
        if rows_after != self.readings or left or dead:
            raise RuntimeError(
                f"pvsimd: {rows_after} rows of {self.readings}, {left} left in the queue, "
                f"{dead} dead-lettered"
            )
        secs = newest / 1e9 - t_ready
        return {
            "pvsimd_s": secs,
            "pvsimd_rate": self.readings / secs,
            "pvsimd_cpu_us": (cpu1 - cpu0) / self.readings * 1e6,
            "pvsimd_sys_pct": 100 * (sys1 - sys0) / max(1e-9, (user1 - user0) + (sys1 - sys0)),
            "pvsimd_detect_lag_s": t_seen - newest / 1e9,
            "pvsimd_hwm_mb": hwm / 1024,
            "pvsimd_files": files,
            "pvsimd_load": load,
        }

    def cleanup(self) -> None:
        # the files stay until the whole bench ends (see common.make_meter_directories)
        self.ctx.broker.cleanup_some(exchanges=[self.exchange], queues=[self.queue, self.dlq])


def _check(d, deadline: float) -> None:  # noqa: ANN001
    if d.proc.poll() is not None:
        raise RuntimeError(f"pvsimd exited with {d.proc.returncode}:\n{d.log()[-2000:]}")
    if time.monotonic() > deadline:
        raise TimeoutError("pvsimd drain took too long")


def run(
    ctx: Context,
    runs: int,
    meters: int,
    readings: int,
    name: str = "drain",
    overrides: dict[str, dict[str, object]] | None = None,
) -> Result:
    say(
        f"[{name}] pvsimd drain: {readings} readings from {meters} meters, {runs} run(s)"
        + (f", config {overrides}" if overrides else "")
    )
    # the raw consumer takes the prefetch pvsimd runs with (its default or the override)
    prefetch = int(
        (overrides or {}).get("broker", {}).get("prefetch")
        or default_of("pvsimd.settings", "broker", "prefetch")
    )
    result = Result(
        name,
        info={
            "meters": meters,
            "readings": readings,
            "overrides": overrides or {},
            "prefetch": prefetch,
        },
    )
    bench = Drain(ctx, meters, readings)
    try:
        for i in range(runs):
            if i % 2 == 0:
                raw = bench.raw(prefetch)
                pv = bench.pvsimd(i, overrides=overrides)
            else:
                pv = bench.pvsimd(i, overrides=overrides)
                raw = bench.raw(prefetch)
            figures = {**raw, **pv, "ratio": pv["pvsimd_rate"] / raw["raw_rate"]}
            result.add(**figures)
            say(
                f"  run {i + 1}: raw {raw['raw_rate']:,.0f}/s ({raw['raw_cpu_us']:.0f} µs CPU "
                f"each), pvsimd {pv['pvsimd_rate']:,.0f}/s ({pv['pvsimd_cpu_us']:.0f} µs CPU "
                f"each, {pv['pvsimd_sys_pct']:.0f} % of it in the kernel), "
                f"ratio {figures['ratio']:.2f}; load {raw['raw_load']:.1f}/{pv['pvsimd_load']:.1f}"
            )
    finally:
        bench.cleanup()
    return result


# --- profiling -----------------------------------------------------------------------------


def start_py_spy(ctx: Context, pid: int, out: Path, idle: bool = False) -> subprocess.Popen:
    """py-spy record (collapsed stacks, no line numbers) until the process exits.

    Without ``idle`` only samples of a thread on the CPU count (where the CPU goes);
    with it, also samples waiting in a system call (where the wall-clock time goes,
    e.g. fsync)."""
    if ctx.py_spy is None:
        raise RuntimeError("py-spy not found (see --py-spy)")
    return subprocess.Popen(
        [
            ctx.py_spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--nolineno",
            "--nonblocking",
            "--output",
            str(out),
            *(["--idle"] if idle else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_py_spy(spy: subprocess.Popen) -> None:
    try:
        spy.wait(timeout=30)  # ends when the profiled process exits
    except subprocess.TimeoutExpired:
        spy.terminate()
        spy.wait(timeout=10)


def profile(ctx: Context, meters: int, readings: int, out: Path) -> dict[str, float]:
    say(f"[profile] pvsimd drain under py-spy: {readings} readings, {meters} meters")
    bench = Drain(ctx, meters, readings, tag="profile-drain")
    try:
        return bench.pvsimd(0, profile=out)
    finally:
        bench.cleanup()
