"""Benchmark 2: meterd flushing a spool backlog, against raw unconfirmed publishing.

A spool of N readings for meter ``bench-0`` (1 s apart, ending now, so [spool] max_age
keeps them) is written once with :meth:`meterd.spool.Spool.append` (fsync off, for
speed) and copied for each run.  The readings queue is declared as pvsimd declares it
and bound, so the readings are routable.  Then either

* **meterd** (its defaults: publish_window 1000, fsync yes, interval 10) starts on a
  copy: from its "connected to" log line until the queue holds N ready messages (polled
  every 20 ms; a quorum queue counts a message once it is committed, just before the
  broker confirms it).  After SIGTERM the spool's ``confirmed`` file must say N-1.
  The time from start to "connected" (the spool's recovery) is reported apart;
* or the **raw publisher** (bench/worker_publish.py) publishes the same bodies with the
  same properties without confirms: from its first publish until the queue holds N
  (the time until its last publish returned is reported too).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.common import (
    Context,
    Result,
    cpu_seconds,
    loadavg,
    say,
    status_kb,
    unique,
)
from bench.drain import start_py_spy, stop_py_spy

METER = "bench-0"


class Flush:
    def __init__(self, ctx: Context, readings: int):
        self.ctx = ctx
        self.readings = readings
        self.exchange = unique("bench.readings")
        self.queue = unique("bench.pvsimd")
        self.dlq = self.queue + ".invalid"
        self.dir = ctx.workdir / unique("flush")
        self.dir.mkdir()
        self.template = self.dir / "template"
        self.bodies = self.dir / "bodies"
        t = time.perf_counter()
        self._make_spool()
        say(f"  spool of {readings} readings written in {time.perf_counter() - t:.1f} s")
        ctx.broker.declare_readings(self.exchange, self.queue, self.dlq)

    def _make_spool(self) -> None:
        from datetime import UTC, datetime

        from meterd.spool import Spool
        from pvsim import wire

        spool = Spool(self.template / METER / "spool", fsync=False)
        spool.open()
        start = int(time.time()) - self.readings
        for i in range(self.readings):
            ts = datetime.fromtimestamp(start + i, UTC)
            power = ((i * 7919) % 90000) / 10

            def body(seq: int, ts: datetime = ts, power: float = power) -> bytes:
                return wire.encode(wire.Reading(METER, ts, power, seq))

            spool.append(body, ts=ts.timestamp())
        with open(self.bodies, "wb") as fh:
            for seq, body in spool.records_from(0, self.readings):
                fh.write(b"%d %s\n" % (seq, body))
        spool.close()

    def raw(self, mode: str) -> dict[str, float]:
        broker = self.ctx.broker
        broker.purge(self.queue)
        load = loadavg()
        proc = self.ctx.spawn_worker(
            "worker_publish", mode, self.ctx.url, self.exchange, METER, self.bodies
        )
        try:
            t_depth = broker.wait_depth(
                self.queue,
                self.readings,
                timeout=60 + self.readings / 1000,
                idle=lambda: _alive(proc),
            )
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            raise RuntimeError(f"worker_publish failed: {stderr[-2000:]}")
        import json

        out = json.loads(stdout.strip().splitlines()[-1])
        secs = t_depth - out["start"]
        raw = "raw" if mode == "select" else "blocking"
        return {
            f"{raw}_s": secs,
            f"{raw}_rate": self.readings / secs,
            f"{raw}_publish_rate": self.readings / (out["published"] - out["start"]),
            f"{raw}_cpu_us": out["cpu"] / self.readings * 1e6,
            f"{raw}_load": load,
        }

    def meterd(self, run: int, profile: Path | None = None) -> dict[str, float]:
        ctx = self.ctx
        broker = ctx.broker
        broker.purge(self.queue)
        state = self.dir / f"state-{run}"
        shutil.copytree(self.template, state)
        config = ctx.meterd_ini(
            self.dir / "meterd.ini", meter=METER, exchange=self.exchange, state=state
        )
        load = loadavg()
        d = ctx.daemon("meterd", config, self.dir / f"meterd-{run}.log")
        spy = None
        try:
            t_conn = d.wait_for_log(r"connected to", timeout=120)
            cpu0 = cpu_seconds(d.pid)
            if profile is not None:
                spy = start_py_spy(ctx, d.pid, profile)

            def check() -> None:
                if d.proc.poll() is not None:
                    raise RuntimeError(f"meterd exited:\n{d.log()[-2000:]}")

            t_depth = broker.wait_depth(
                self.queue, self.readings, timeout=60 + self.readings / 500, idle=check
            )
            cpu1 = cpu_seconds(d.pid)
            hwm = status_kb(d.pid, "VmHWM")
        finally:
            rc = d.stop()
            if spy is not None:
                stop_py_spy(spy)
        if rc != 0:
            raise RuntimeError(f"meterd exited with {rc}:\n{d.log()[-2000:]}")
        confirmed = int((state / METER / "spool" / "confirmed").read_text().strip())
        if confirmed < self.readings - 1:
            raise RuntimeError(f"meterd confirmed up to seq {confirmed} of {self.readings - 1}")
        shutil.rmtree(state, ignore_errors=True)
        secs = t_depth - t_conn
        return {
            "meterd_s": secs,
            "meterd_rate": self.readings / secs,
            "meterd_cpu_us": (cpu1 - cpu0) / self.readings * 1e6,
            "meterd_startup_s": t_conn - d.started,
            "meterd_hwm_mb": hwm / 1024,
            "meterd_load": load,
        }

    def cleanup(self) -> None:
        self.ctx.broker.cleanup_some(exchanges=[self.exchange], queues=[self.queue, self.dlq])
        shutil.rmtree(self.dir, ignore_errors=True)


def _alive(proc) -> None:  # noqa: ANN001
    if proc.poll() is not None and proc.returncode != 0:
        raise RuntimeError(f"worker_publish failed: {proc.stderr.read()[-2000:]}")


def run(ctx: Context, runs: int, readings: int) -> Result:
    say(f"[flush] meterd backlog flush: {readings} spooled readings, {runs} run(s)")
    result = Result("flush", info={"readings": readings})
    bench = Flush(ctx, readings)
    try:
        for i in range(runs):
            if i % 2 == 0:
                raw = bench.raw("select")
                blocking = bench.raw("blocking")
                md = bench.meterd(i)
            else:
                md = bench.meterd(i)
                blocking = bench.raw("blocking")
                raw = bench.raw("select")
            figures = {
                **raw,
                **blocking,
                **md,
                "ratio": md["meterd_rate"] / raw["raw_rate"],
                "ratio_blocking": md["meterd_rate"] / blocking["blocking_rate"],
            }
            result.add(**figures)
            say(
                f"  run {i + 1}: raw select {raw['raw_rate']:,.0f}/s into the queue "
                f"({raw['raw_cpu_us']:.0f} µs CPU each), raw blocking "
                f"{blocking['blocking_rate']:,.0f}/s ({blocking['blocking_cpu_us']:.0f} µs), "
                f"meterd {md['meterd_rate']:,.0f}/s ({md['meterd_cpu_us']:.0f} µs CPU each, "
                f"startup {md['meterd_startup_s']:.1f} s), ratio {figures['ratio']:.2f} "
                f"(vs blocking {figures['ratio_blocking']:.2f}); "
                f"load {raw['raw_load']:.1f}/{md['meterd_load']:.1f}"
            )
    finally:
        bench.cleanup()
    return result


def profile(ctx: Context, readings: int, out: Path) -> dict[str, float]:
    say(f"[profile] meterd flush under py-spy: {readings} readings")
    bench = Flush(ctx, readings)
    try:
        return bench.meterd(0, profile=out)
    finally:
        bench.cleanup()
