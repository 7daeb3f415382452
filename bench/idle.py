"""Benchmark 4a: an idle meterd — its memory and CPU between samples.

meterd with its defaults (interval 10, spool fsync on, household load model) against a
bound queue, from a fresh state directory.  After the given time (30 s; the first 5 s
are start-up and not counted for CPU) VmRSS and VmHWM from /proc/<pid>/status, and its
CPU share from utime+stime over the rest.  Where the code loads prometheus_client only
to serve metrics (``pvsim/metrics_endpoint.py``, 0.3.0 from e015f4a on), each run also
measures the RSS with ``[metrics] listen`` empty, where it is never loaded.  pvsimd's
memory after the steady-state benchmark is reported there (benchmark 3).
"""

from __future__ import annotations

import importlib.util
import shutil
import time

from bench.common import Context, Result, cpu_seconds, loadavg, say, status_kb, unique


def metrics_optional() -> bool:
    """Whether the snapshot imports prometheus_client only to serve metrics."""
    return importlib.util.find_spec("pvsim.metrics_endpoint") is not None


def one_run(ctx: Context, seconds: float, metrics_off: bool = False) -> dict[str, float]:
    d_dir = ctx.workdir / unique("idle")
    d_dir.mkdir()
    exchange, queue = unique("bench.readings"), unique("bench.pvsimd")
    broker = ctx.broker
    try:
        broker.declare_readings(exchange, queue, queue + ".invalid")
        overrides = {"metrics": {"listen": ""}} if metrics_off else {}
        config = ctx.meterd_ini(
            d_dir / "meterd.ini",
            meter="bench-idle",
            exchange=exchange,
            state=d_dir / "state",
            **overrides,
        )
        d = ctx.daemon("meterd", config, d_dir / "meterd.log")
        try:
            t_conn = d.wait_for_log(r"connected to", timeout=60)
            warm = min(5.0, seconds / 4)
            time.sleep(max(0.0, d.started + warm - time.time()))
            t0, c0 = time.time(), cpu_seconds(d.pid)
            time.sleep(max(0.0, d.started + seconds - time.time()))
            t1, c1 = time.time(), cpu_seconds(d.pid)
            rss, hwm = status_kb(d.pid, "VmRSS"), status_kb(d.pid, "VmHWM")
            load = loadavg()
        finally:
            rc = d.stop()
        if rc != 0:
            raise RuntimeError(f"meterd exited with {rc}:\n{d.log()[-2000:]}")
        published = broker.depth(queue)
        return {
            "rss_mb": rss / 1024,
            "hwm_mb": hwm / 1024,
            "cpu_pct": (c1 - c0) / (t1 - t0) * 100,
            "cpu_ms": (c1 - c0) * 1000,
            "window_s": t1 - t0,
            "startup_s": t_conn - d.started,
            "published": published,
            "load": load,
        }
    finally:
        broker.cleanup_some(exchanges=[exchange], queues=[queue, queue + ".invalid"])
        shutil.rmtree(d_dir, ignore_errors=True)


def run(ctx: Context, runs: int, seconds: float) -> Result:
    say(f"[idle] idle meterd (interval 10): RSS after {seconds:g} s, {runs} run(s)")
    result = Result("idle", info={"seconds": seconds})
    off = metrics_optional()
    for i in range(runs):
        r = one_run(ctx, seconds)
        if off:
            r["rss_off_mb"] = one_run(ctx, seconds, metrics_off=True)["rss_mb"]
        result.add(**r)
        say(
            f"  run {i + 1}: RSS {r['rss_mb']:.1f} MB (HWM {r['hwm_mb']:.1f}), CPU "
            f"{r['cpu_pct']:.2f} % ({r['cpu_ms']:.0f} ms in {r['window_s']:.0f} s), "
            f"{r['published']} readings published, load {r['load']:.1f}"
            + (f"; RSS with metrics off {r['rss_off_mb']:.1f} MB" if off else "")
        )
    return result
