"""Benchmark 3: pvsimd under a steady load (and its memory afterwards).

A load generator (bench/worker_loadgen.py, its own process) publishes R readings/s for
D seconds, spread over M meters on an M/R-second grid (10 000 meters at 10 s: 1 000/s),
against a running pvsimd with its defaults.  Measured on pvsimd's process:

* **CPU share** of one core: utime+stime deltas from /proc/<pid>/stat over the load
  window after a warm-up of two rounds (a round: every meter once, M/R seconds) when
  the run lasts at least three, else the first quarter of the run.  The first round
  creates every meter's day file (as each local midnight does) and pvsimd falls
  behind; the second is when it catches up.  The first round's CPU share and latency
  are reported apart (``first_*``);
* **RSS**: VmRSS sampled every second (peak and at the end), VmHWM;
* **open descriptors**: /proc/<pid>/fd every second, all and those on .csv files
  (to compare with [output] max_open_files);
* **end-to-end latency** of a sample of the readings, publish → row in the CSV file.
  The generator records time.time() just before it publishes each reading of every
  k-th meter; the benchmark watches those meters' directories with inotify (created in
  advance: pvsimd's mkdir(exist_ok=True) takes them as they are) and, on every
  IN_MODIFY, reads the new bytes of the file and stamps each new row's seq with the
  time the event was read.  Latency = first seen − published, same clock (both in
  this machine's wall clock), over the readings published after the warm-up.  The
  event comes with pvsimd's os.write(); its fsync and the ack follow.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import struct
import threading
import time
from pathlib import Path

from bench.common import (
    Context,
    Result,
    count_rows,
    cpu_seconds,
    default_of,
    loadavg,
    make_meter_directories,
    meter_id,
    open_fds,
    percentile,
    say,
    sender_map_file,
    status_kb,
    unique,
)

IN_MODIFY = 0x00000002
IN_CREATE = 0x00000100
_EVENT = struct.Struct("iIII")


class RowWatcher:
    """Stamp the first appearance of each row (meter, seq) in the watched directories."""

    def __init__(self, directories: dict[str, Path]):
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs: dict[int, tuple[str, Path]] = {}
        for meter, path in directories.items():
            path.mkdir(parents=True, exist_ok=True)
            wd = self.libc.inotify_add_watch(self.fd, str(path).encode(), IN_MODIFY | IN_CREATE)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
            self.dirs[wd] = (meter, path)
        self.offsets: dict[Path, int] = {}
        self.seen: dict[str, float] = {}
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="row-watcher", daemon=True)

    def start(self) -> RowWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(timeout=5)
        os.close(self.fd)

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while not self._halt.is_set():
            if not poller.poll(100):
                continue
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            now = time.time()
            touched: set[tuple[str, Path]] = set()
            pos = 0
            while pos < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
                name = data[pos + _EVENT.size : pos + _EVENT.size + length].rstrip(b"\0")
                pos += _EVENT.size + length
                if wd in self.dirs and name.endswith(b".csv"):
                    meter, path = self.dirs[wd]
                    touched.add((meter, path / name.decode()))
            for meter, file in touched:
                self._read_new(meter, file, now)

    def _read_new(self, meter: str, file: Path, now: float) -> None:
        offset = self.offsets.get(file, 0)
        try:
            with open(file, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self.offsets[file] = offset + end
        for line in data[:end].split(b"\n")[:-1]:
            if line.startswith(b"timestamp,"):
                continue
            seq = line.rsplit(b",", 1)[1].decode()
            self.seen.setdefault(f"{meter}:{seq}", now)


class Sampler(threading.Thread):
    """Every second: pvsimd's CPU seconds, RSS and descriptors."""

    def __init__(self, pid: int):
        super().__init__(name="proc-sampler", daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float, int, int, int]] = []  # t, cpu, rss kB, fds, csv
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                fds, csv = open_fds(self.pid)
                self.samples.append(
                    (time.time(), cpu_seconds(self.pid), status_kb(self.pid, "VmRSS"), fds, csv)
                )
            except (OSError, KeyError):
                return
            self._halt.wait(1.0)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def cpu_share(self, t0: float, t1: float) -> float:
        window = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(window) < 2:
            return float("nan")
        return (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])


def one_run(
    ctx: Context,
    run: int,
    meters: int,
    rate: float,
    duration: float,
    sample_every: int,
    ts_mode: str = "grid",
    profile: Path | None = None,
    idle: bool = False,
    latency_file: Path | None = None,
) -> dict[str, float]:
    d_dir = ctx.workdir / unique("steady")
    d_dir.mkdir()
    exchange, queue = unique("bench.readings"), unique("bench.pvsimd")
    broker = ctx.broker
    try:
        broker.declare_readings(exchange, queue, queue + ".invalid")
        out_dir = d_dir / "csv"
        make_meter_directories(out_dir, meters)
        sampled = {meter_id(i): out_dir / meter_id(i) for i in range(0, meters, sample_every)}
        watcher = RowWatcher(sampled).start()
        config = ctx.pvsimd_ini(
            d_dir / "pvsimd.ini",
            exchange=exchange,
            queue=queue,
            output_dir=out_dir,
            sender_map=sender_map_file(d_dir / "senders", meters),
        )
        d = ctx.daemon("pvsimd", config, d_dir / "pvsimd.log")
        sampler = spy = None
        try:
            d.wait_for_log(r"consuming from queue")
            if profile is not None:
                from bench.drain import start_py_spy

                spy = start_py_spy(ctx, d.pid, profile, idle)
            sampler = Sampler(d.pid)
            sampler.start()
            load0 = loadavg()
            gen = ctx.worker(
                "worker_loadgen",
                ctx.url,
                exchange,
                meters,
                rate,
                duration,
                sample_every,
                d_dir / "sent.json",
                ts_mode,
                timeout=duration + 120,
            )
            # let pvsimd finish: no ready messages, and every sampled row seen
            sent: dict[str, float] = json.loads((d_dir / "sent.json").read_text())
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if broker.depth(queue) == 0 and all(k in watcher.seen for k in sent):
                    break
                time.sleep(0.05)
            time.sleep(1.2)  # one more sample of the settled process
            rss_end = status_kb(d.pid, "VmRSS")
            hwm = status_kb(d.pid, "VmHWM")
            load1 = loadavg()
        finally:
            if sampler is not None:
                sampler.stop()
            rc = d.stop()
            watcher.stop()
            if spy is not None:
                from bench.drain import stop_py_spy

                stop_py_spy(spy)
        if rc != 0:
            raise RuntimeError(f"pvsimd exited with {rc}:\n{d.log()[-2000:]}")
        rows, _files, _ = count_rows(out_dir)
        interval = meters / rate
        warm = 2 * interval if duration >= 3 * interval else duration / 4
        cpu = sampler.cpu_share(gen["start"] + warm, gen["end"])
        t_first = gen["start"] + min(interval, duration)
        first = sampler.cpu_share(gen["start"], t_first)
        t_warm = gen["start"] + warm
        lat = [
            (watcher.seen[k] - t) * 1000
            for k, t in sent.items()
            if k in watcher.seen and t >= t_warm
        ]
        missing = len([k for k, t in sent.items() if t >= t_warm]) - len(lat)
        lat_first = [
            (watcher.seen[k] - t) * 1000
            for k, t in sent.items()
            if k in watcher.seen and t < t_first
        ]
        if latency_file is not None:  # publish time, meter:seq, latency in ms
            with open(latency_file, "w") as fh:
                for k, t in sorted(sent.items(), key=lambda kv: kv[1]):
                    seen = watcher.seen.get(k)
                    ms = "" if seen is None else f"{(seen - t) * 1000:.1f}"
                    fh.write(f"{t - gen['start']:.3f} {k} {ms}\n")
        samples = sampler.samples
        return {
            "cpu_pct": cpu * 100,
            "first_cpu_pct": first * 100,
            "warmup_s": warm,
            "rss_end_mb": rss_end / 1024,
            "rss_peak_mb": max(s[2] for s in samples) / 1024,
            "hwm_mb": hwm / 1024,
            "fds_max": max(s[3] for s in samples),
            "csv_fds_max": max(s[4] for s in samples),
            "p50_ms": percentile(lat, 50),
            "p90_ms": percentile(lat, 90),
            "p99_ms": percentile(lat, 99),
            "max_ms": max(lat) if lat else float("nan"),
            "latency_samples": len(lat),
            "first_p50_ms": percentile(lat_first, 50),
            "first_p99_ms": percentile(lat_first, 99),
            "first_max_ms": max(lat_first) if lat_first else float("nan"),
            "latency_missing": missing,
            "published": gen["published"],
            "rows": rows,
            "gen_lag_ms": gen["lag"] * 1000,
            "load": (load0 + load1) / 2,
        }
    finally:
        broker.cleanup_some(exchanges=[exchange], queues=[queue, queue + ".invalid"])
        # the files stay until the whole bench ends (see common.make_meter_directories)


def run(
    ctx: Context,
    runs: int,
    meters: int,
    rate: float,
    duration: float,
    name: str = "steady",
    ts_mode: str = "grid",
) -> Result:
    sample_every = max(1, meters // 500)
    max_open = int(default_of("pvsimd.settings", "output", "max_open_files"))
    say(
        f"[{name}] steady state: {meters} meters, {rate:g} readings/s, {duration:g} s, "
        f"latency of every {sample_every}th meter, ts {ts_mode}, {runs} run(s)"
    )
    result = Result(
        name,
        info={
            "meters": meters,
            "rate": rate,
            "duration": duration,
            "max_open_files": max_open,
            "ts": ts_mode,
        },
    )
    for i in range(runs):
        r = one_run(ctx, i, meters, rate, duration, sample_every, ts_mode)
        result.add(**r)
        say(
            f"  run {i + 1}: CPU {r['cpu_pct']:.1f} % after {r['warmup_s']:.0f} s warm-up "
            f"(first round {r['first_cpu_pct']:.1f} %, p99 {r['first_p99_ms']:.0f} ms), "
            f"latency p50 {r['p50_ms']:.0f} ms "
            f"p99 {r['p99_ms']:.0f} ms max {r['max_ms']:.0f} ms ({r['latency_samples']} "
            f"samples, {r['latency_missing']} missing), RSS {r['rss_end_mb']:.1f} MB "
            f"(peak {r['rss_peak_mb']:.1f}), fds max {r['fds_max']} ({r['csv_fds_max']} csv), "
            f"rows {r['rows']}/{r['published']}, load {r['load']:.1f}"
        )
    return result
