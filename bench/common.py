"""What every benchmark needs: the code under test (a snapshot), the broker, daemon
processes, /proc figures, CSV row counts and small statistics.

The daemons run from a *snapshot* of pvsim/, pvsimd/ and meterd/ copied at the start of
the run, so edits made in the working tree while the benchmark runs cannot mix two
versions of the code into one set of figures.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pvsim", "pvsimd", "meterd")
SYSTEM_BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def say(*parts: object) -> None:
    print(*parts, flush=True)


# --- the code under test -----------------------------------------------------------------


@dataclass
class Snapshot:
    """A copy of the daemons' code; ``path`` goes first on PYTHONPATH."""

    path: Path
    digest: str  # sha256 over the copied .py files (names and contents), 12 hex digits
    git_head: str
    git_dirty: bool | None

    @classmethod
    def take(cls, source: Path, into: Path) -> Snapshot:
        into.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        for pkg in PACKAGES:
            shutil.copytree(
                source / pkg,
                into / pkg,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        for f in sorted(into.rglob("*.py")):
            h.update(str(f.relative_to(into)).encode())
            h.update(f.read_bytes())
        head, dirty = _git_state(source)
        return cls(into, h.hexdigest()[:12], head, dirty)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.path)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for k in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(k, None)
        return env

    def activate(self) -> None:
        """Import pvsim/pvsimd/meterd from the snapshot in this process too."""
        sys.path.insert(0, str(self.path))


def _git_state(source: Path) -> tuple[str, bool | None]:
    """HEAD and whether the daemons' code differs from it (read-only git commands)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        diff = subprocess.run(
            [
                "git",
                "--no-optional-locks",
                "-C",
                str(source),
                "status",
                "--porcelain",
                "--",
                *PACKAGES,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return head, bool(diff)
    except (OSError, subprocess.CalledProcessError):
        return "unknown", None


# --- /proc figures -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (resolution 1/CLK_TCK)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def status_kb(pid: int, key: str) -> int:
    """A 'kB' line of /proc/<pid>/status (VmRSS, VmHWM, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def open_fds(pid: int) -> tuple[int, int]:
    """(all open descriptors, those on .csv files) of a process."""
    total = csv = 0
    base = f"/proc/{pid}/fd"
    for name in os.listdir(base):
        total += 1
        with contextlib.suppress(OSError):
            if os.readlink(f"{base}/{name}").endswith(".csv"):
                csv += 1
    return total, csv


def loadavg() -> float:
    return os.getloadavg()[0]


def machine() -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    mhz = re.search(r"^cpu MHz\s*:\s*(.*)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M)
    info: dict[str, object] = {
        "nproc": os.cpu_count(),
        "cpu": model.group(1).strip() if model else "?",
        "mhz": float(mhz.group(1)) if mhz else None,
        "ram_gb": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }
    try:
        import pika

        info["pika"] = pika.__version__
    except ImportError:
        info["pika"] = "?"
    return info


# --- daemons -------------------------------------------------------------------------------


def write_ini(path: Path, sections: dict[str, dict[str, object]]) -> Path:
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {v}" for k, v in keys.items())
        lines.append("")
    path.write_text("\n".join(lines))
    path.chmod(0o600)  # the broker URL holds a password
    return path


class Daemon:
    """One meterd or pvsimd process, run from the snapshot; stderr to a log file."""

    def __init__(
        self,
        snapshot: Snapshot,
        program: str,
        config: Path,
        log: Path,
        python: str = sys.executable,
        prefix: list[str] | None = None,
    ):
        self.program = program
        self.log_path = log
        cmd = [*(prefix or []), python, "-m", program, "--config", str(config)]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=snapshot.env(),
                cwd=snapshot.path,
            )
        self.started = time.time()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = 30.0, interval: float = 0.005) -> float:
        """time.time() when ``pattern`` first shows in the log (polled every ``interval``)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if rx.search(self.log()):
                return time.time()
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.program} exited with {self.proc.returncode}:\n{self.log()[-3000:]}"
                )
            time.sleep(interval)
        raise TimeoutError(f"{self.program}: no {pattern!r} in {timeout} s:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


# --- the broker ----------------------------------------------------------------------------


class Broker:
    """A control connection to the broker, and every object the benchmarks declare
    (deleted by :meth:`cleanup`)."""

    def __init__(self, url: str):
        import pika

        self.pika = pika
        self.url = url
        self._conn = None
        self._ch = None
        self.exchanges: list[str] = []
        self.queues: list[str] = []
        self.version = "?"

    def channel(self):  # noqa: ANN201
        pika = self.pika
        if self._conn is None or self._conn.is_closed or self._ch is None or self._ch.is_closed:
            with contextlib.suppress(Exception):
                if self._conn is not None and self._conn.is_open:
                    self._conn.close()
            params = pika.URLParameters(self.url)
            params.heartbeat = 0  # a control connection, idle for minutes at a time
            self._conn = pika.BlockingConnection(params)
            self._ch = self._conn.channel()
            props = self._conn._impl.server_properties or {}
            v = props.get("version", b"?")
            self.version = v.decode() if isinstance(v, bytes) else str(v)
        return self._ch

    def declare_readings(
        self, exchange: str, queue: str, dlq: str, delivery_limit: int = 20, bind: bool = True
    ) -> None:
        """The exchange and pvsimd's two queues exactly as pvsimd declares them."""
        ch = self.channel()
        ch.exchange_declare(exchange, exchange_type="topic", durable=True)
        self.exchanges.append(exchange)
        try:
            from pvsim.topology import Topology
        except ImportError:  # a snapshot from before pvsim/topology.py (0.2.0)
            from pvsimd.consumer import BINDING_KEY, queue_arguments

            declared = [
                (dlq, {"x-queue-type": "quorum"}),
                (queue, queue_arguments(dlq, delivery_limit)),
            ]
            binding = (queue, exchange, BINDING_KEY)
        else:
            topology = Topology(exchange, queue, dlq, delivery_limit)
            declared = [(q.name, q.arguments) for q in topology.queues]
            b = topology.binding
            binding = (b.queue, b.exchange, b.routing_key)
        for name, arguments in declared:
            ch.queue_declare(name, durable=True, arguments=arguments)
            self.queues.append(name)
        if bind:
            ch.queue_bind(binding[0], binding[1], routing_key=binding[2])

    def depth(self, queue: str) -> int:
        """Ready messages (the broker's count excludes delivered, unacknowledged ones)."""
        for attempt in range(3):
            try:
                return self.channel().queue_declare(queue, passive=True).method.message_count
            except self.pika.exceptions.AMQPError:
                self._conn = None
                if attempt == 2:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def purge(self, queue: str) -> None:
        self.channel().queue_purge(queue)

    def wait_depth(
        self,
        queue: str,
        at_least: int,
        timeout: float,
        interval: float = 0.02,
        idle: Callable[[], None] | None = None,
    ) -> float:
        """time.time() when the queue holds at least ``at_least`` ready messages."""
        deadline = time.monotonic() + timeout
        while True:
            if self.depth(queue) >= at_least:
                return time.time()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"queue {queue}: {self.depth(queue)} of {at_least} after {timeout} s "
                    "(is the broker blocking publishers: a memory or disk alarm?)"
                )
            if idle is not None:
                idle()
            time.sleep(interval)

    def cleanup_some(self, exchanges: list[str], queues: list[str]) -> None:
        """Delete these objects now (the rest stay for :meth:`cleanup`)."""
        ch = self.channel()
        for q in queues:
            with contextlib.suppress(Exception):
                ch = self.channel()
                ch.queue_delete(q)
            if q in self.queues:
                self.queues.remove(q)
        for x in exchanges:
            with contextlib.suppress(Exception):
                ch = self.channel()
                ch.exchange_delete(x)
            if x in self.exchanges:
                self.exchanges.remove(x)

    def cleanup(self) -> None:
        # a fresh connection: the old one may have been interrupted mid-call (SIGTERM)
        with contextlib.suppress(Exception):
            if self._conn is not None and self._conn.is_open:
                self._conn.close()
        self._conn = None
        if not self.queues and not self.exchanges:
            return
        try:
            ch = self.channel()
            for q in self.queues:
                with contextlib.suppress(Exception):
                    ch.queue_delete(q)
            for x in self.exchanges:
                with contextlib.suppress(Exception):
                    ch.exchange_delete(x)
        except Exception as exc:  # noqa: BLE001
            say(f"bench: could not delete broker objects {self.queues} {self.exchanges}: {exc}")
        finally:
            self.queues.clear()
            self.exchanges.clear()
            with contextlib.suppress(Exception):
                if self._conn is not None and self._conn.is_open:
                    self._conn.close()
            self._conn = None


def preload(
    url: str,
    exchange: str,
    messages: list[tuple[str, bytes, object]],
    until_queued: Callable[[], None],
) -> float:
    """Publish (routing key, body, properties) without confirms; returns seconds taken.

    The connection stays open until ``until_queued()`` returns (it waits for the queue
    depth): closing it straight after the last publish can lose messages that the
    channel still holds for a quorum queue (seen: 1 to 170 of 200 000)."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        t0 = time.perf_counter()
        publish = ch.basic_publish
        for rk, body, props in messages:
            publish(exchange, rk, body, props)
        took = time.perf_counter() - t0
        until_queued()
        return took
    finally:
        conn.close()


# --- readings ------------------------------------------------------------------------------


def meter_id(i: int) -> str:
    return f"bench-m{i:05d}"


def meterd_properties(meter: str, seq: int, user: str = "guest"):  # noqa: ANN201
    """The AMQP properties meterd sets (see meterd/publisher.py)."""
    import pika

    from pvsim import wire

    return pika.BasicProperties(
        content_type=wire.CONTENT_TYPE,
        delivery_mode=2,
        message_id=f"{meter}:{seq}",
        app_id="meterd",
        user_id=user,
    )


def sender_map_file(path: Path, meters: int, user: str = "guest") -> Path:
    """A [security] sender_map file: ``user`` speaks for every bench meter."""
    path.write_text("\n".join(f"{user}:{meter_id(i)}" for i in range(meters)) + "\n")
    return path


# --- CSV output ----------------------------------------------------------------------------


def make_meter_directories(directory: Path, meters: int) -> None:
    """The meters' directories, as an installation that has seen them before has them.

    Files and directories are never deleted before the whole bench ends: on ext4 an
    inode freed less than a minute ago (longer while its table block is dirty) is
    skipped by the allocator, and creating files right after deleting thousands costs
    ~10 × more system time (measured here: 0.7 ms instead of 75 µs per file).
    """
    for i in range(meters):
        (directory / meter_id(i)).mkdir(parents=True, exist_ok=True)


def creation_probe(directory: Path, files: int = 500) -> float:
    """µs of wall time to create one file and write a row to it, on ``directory``'s
    filesystem now (what a day file's first row costs; it varies with the disk)."""
    probe = directory / unique("creation-probe")
    probe.mkdir()
    t0 = time.perf_counter()
    for i in range(files):
        fd = os.open(probe / f"{i}.csv", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        os.write(fd, b"timestamp,meter_id,meter_w,pv_w,sum_w,seq\n")
        os.close(fd)
    return (time.perf_counter() - t0) / files * 1e6


def settle_filesystem(directory: Path, limit_us: float, wait_s: float) -> float:
    """Wait (at most ``wait_s``) until creating a file costs at most ``limit_us``: after
    thousands of deletions (an earlier bench's or test suite's clean-up) ext4 needs up
    to ~5 minutes before creating files is cheap again.  Returns the last probe."""
    cost = creation_probe(directory)
    deadline = time.monotonic() + wait_s
    while cost > limit_us and time.monotonic() < deadline:
        say(f"  creating a file costs {cost:.0f} µs (> {limit_us:.0f}): waiting for the disk")
        time.sleep(20)
        cost = creation_probe(directory)
    return cost


def count_rows(directory: Path) -> tuple[int, int, int]:
    """(rows, files, newest mtime in ns) of the CSV files under ``directory``."""
    rows = files = newest = 0
    try:
        meters = list(os.scandir(directory))
    except FileNotFoundError:
        return 0, 0, 0
    for d in meters:
        if not d.is_dir():
            continue
        for f in os.scandir(d.path):
            if not f.name.endswith(".csv"):
                continue
            with open(f.path, "rb") as fh:
                data = fh.read()
            files += 1
            rows += data.count(b"\n") - (1 if data.startswith(b"timestamp,") else 0)
            newest = max(newest, f.stat().st_mtime_ns)
    return rows, files, newest


# --- statistics ----------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else float("nan")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


@dataclass
class Result:
    """One benchmark's runs: named figures per run, and the median of each."""

    name: str
    runs: list[dict[str, float]] = field(default_factory=list)
    info: dict[str, object] = field(default_factory=dict)

    def add(self, **figures: float) -> None:
        self.runs.append(figures)

    def median(self, key: str) -> float:
        return median(r.get(key) for r in self.runs)

    def medians(self) -> dict[str, float]:
        keys: list[str] = []
        for r in self.runs:
            keys.extend(k for k in r if k not in keys)
        return {k: self.median(k) for k in keys}

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "runs": self.runs, "median": self.medians(), **self.info}


def dump_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


# --- a benchmark run's context -------------------------------------------------------------


@dataclass
class Context:
    snapshot: Snapshot
    broker: Broker
    url: str
    workdir: Path
    python: str = sys.executable
    py_spy: str | None = None
    timezone: str = "Europe/Berlin"

    def worker_env(self) -> dict[str, str]:
        env = self.snapshot.env()
        env["PYTHONPATH"] = f"{REPO}{os.pathsep}{self.snapshot.path}"
        return env

    def worker(self, module: str, *args: object, timeout: float = 600.0) -> dict:
        """Run ``python -m bench.<module> ARGS``; its last stdout line is JSON."""
        proc = subprocess.run(
            [self.python, "-m", f"bench.{module}", *map(str, args)],
            capture_output=True,
            text=True,
            env=self.worker_env(),
            cwd=REPO,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"bench.{module} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def spawn_worker(self, module: str, *args: object) -> subprocess.Popen:
        return subprocess.Popen(
            [self.python, "-m", f"bench.{module}", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.worker_env(),
            cwd=REPO,
        )

    def pvsimd_ini(
        self,
        path: Path,
        *,
        exchange: str,
        queue: str,
        output_dir: Path,
        sender_map: Path,
        **overrides: dict[str, object],
    ) -> Path:
        sections: dict[str, dict[str, object]] = {
            "site": {"latitude": 52.52, "longitude": 13.405, "timezone": self.timezone},
            "broker": {
                "url": self.url,
                "exchange": exchange,
                "queue": queue,
                "dead_letter_queue": queue + ".invalid",
            },
            "output": {"directory": output_dir},
            "security": {"verify_sender": "yes", "sender_map": sender_map},
            "logging": {"level": "info"},
        }
        for section, keys in overrides.items():
            sections.setdefault(section, {}).update(keys)
        return write_ini(path, sections)

    def meterd_ini(
        self,
        path: Path,
        *,
        meter: str,
        exchange: str,
        state: Path,
        interval: float = 10,
        **overrides: dict[str, object],
    ) -> Path:
        sections: dict[str, dict[str, object]] = {
            "meter": {"id": meter, "interval": interval, "state_directory": state},
            "broker": {"url": self.url, "exchange": exchange},
            "logging": {"level": "info"},
        }
        for section, keys in overrides.items():
            sections.setdefault(section, {}).update(keys)
        return write_ini(path, sections)

    def daemon(
        self, program: str, config: Path, log: Path, prefix: list[str] | None = None
    ) -> Daemon:
        return Daemon(self.snapshot, program, config, log, self.python, prefix)


def default_of(schema_module: str, section: str, key: str) -> str:
    """A config key's default in the snapshot's schema (e.g. pvsimd.settings)."""
    import importlib

    schema = importlib.import_module(schema_module).SCHEMA
    if isinstance(schema, dict):  # a snapshot from before the typed config
        return schema[section][key].default
    return schema.sections()[section].options()[key].default
