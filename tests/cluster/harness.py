"""The cluster rig: three meters and two shards, each with an active pvsimd and a
standby, on a three-node RabbitMQ cluster of the tier's own; the faults a test injects
and the failover times it measures.

Every daemon gets the three nodes' URLs (``[broker] url``, shuffled by each daemon).
The pvsimd all write one output directory (the shards' shared mode).  The meters are
chosen for where the consistent-hash exchange puts them (jump consistent hashing of
the routing key, deterministic): with two shards house-j goes to shard 0, house-a and
house-c to shard 1; a third shard takes house-a.

Failover time: a thread watches the CSV files and notes when each row first appears;
a fault's failover time is the longest any reading sampled around it (from half a
second before the fault until the rows flow again) took from its timestamp to its
row — the time the readings waited for the path to come back.  Without a fault that
is about 0.1 s (``flush_interval = 0.05``, a sample every 50 ms).

After each fault the test waits (with a deadline) until every meter's rows are the
contiguous range of seqs up to the newest, with none twice; at the end
:meth:`ClusterRig.finish` stops the meters, lets the pvsimd write everything meterd
assigned, stops them and checks every seq meterd assigned is exactly one row.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pika

from tests.fault.harness import Figures, assert_exactly_once, seqs_written
from tests.support import tier_runs
from tests.support.broker_cluster import BrokerCluster
from tests.support.broker_node import BrokerNode
from tests.support.daemons import DaemonProcess, Site
from tests.support.wait import wait_until

METERS = ("house-a", "house-c", "house-j")
#: where the consistent-hash exchange puts each meter, by the number of shards
PLACEMENT = {
    2: {"house-a": 1, "house-c": 1, "house-j": 0},
    3: {"house-a": 2, "house-c": 1, "house-j": 0},
}
INTERVAL = 0.05  # s between samples: 3 meters x 20/s = 60 readings/s
BROKER_KEYS = {"heartbeat": 2, "connect_timeout": 3, "retry_initial": 0.2, "retry_max": 1}
HEADER = b"timestamp,meter_id,meter_w,pv_w,sum_w,seq"

#: what each kind of fault does (docs/reliability.md lists them)
FAULT_KINDS = {
    "leader node SIGKILL": "the node leading a shard queue (its Raft leader) has its whole "
    "process tree SIGKILLed while readings flow; the other two nodes elect a new leader "
    "and the daemons connected to it move to another node; then it is started again on "
    "its data and rejoins",
    "active pvsimd SIGKILL": "a shard's active pvsimd is SIGKILLed: the broker makes the "
    "standby the queue's single active consumer, which claims the shard, writes the "
    "journal rows the dead one left and goes on; the killed one is started again and "
    "becomes the standby",
    "active pvsimd SIGKILL, rows in its journal": "a shard's active pvsimd (prefetch 8, so "
    "that a backlog goes through its journal) is stopped (SIGSTOP) for 1.5 s while its "
    "readings pile up, let go on (SIGCONT), and SIGKILLed as soon as its journal holds "
    "rows (acknowledged, not yet in their day files): the standby that takes over writes "
    "them to their day files before anything else; its failover time includes its own "
    "journal's delay (rows reach their day files up to 5 s after their acknowledgement "
    "while it works off a backlog)",
    "meterd's node stopped": "the node a meterd is connected to is stopped "
    "(`rabbitmqctl stop`): the meterd moves to the next node in its list; then the "
    "node is started again",
    "rolling restart": "each of the three nodes in turn is stopped and started again, the "
    "next one only once no quorum queue depends on it (`rabbitmq-queues "
    "check_if_node_is_quorum_critical`)",
    "shard added": "a pvsimd for a third shard starts while readings flow: its queue is "
    "bound to the consistent-hash exchange and about a third of the meters (here "
    "house-a) move to it; the old shard works off what its queue still holds, and both "
    "write the moved meter's day file",
}


@dataclass
class ClusterRun:
    """What one test did and what came out: collected for docs/reliability.md."""

    nodeid: str
    faults: Counter = field(default_factory=Counter)
    failover: dict[str, list[float]] = field(default_factory=dict)
    baseline: float | None = None  # the longest delay before any fault
    figures: Figures | None = None
    outcome: str = "not run"
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.nodeid.rsplit("::", 1)[-1]

    def fault(self, kind: str, seconds: float) -> None:
        assert kind in FAULT_KINDS, kind
        self.faults[kind] += 1
        self.failover.setdefault(kind, []).append(seconds)

    def describe_faults(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in self.faults.items()) or "none"


class RowWatch:
    """A thread that notes when each CSV row first appears (for the failover times)."""

    def __init__(self, output: Path, meters: Iterable[str], interval: float = 0.05):
        self.output = output
        self.meters = tuple(meters)
        self.interval = interval
        self.seen: dict[tuple[str, float], float] = {}  # (meter, reading ts) -> first seen
        self.newest: dict[str, float] = {}  # meter -> the newest reading ts seen
        self._offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RowWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.poll()
            self._stop.wait(self.interval)

    def poll(self) -> None:
        now = time.time()
        for meter in self.meters:
            for path in sorted((self.output / meter).glob("*.csv")):
                start = self._offsets.get(path, 0)
                with open(path, "rb") as fh:
                    if fh.seek(0, 2) < start:
                        start = 0  # cut back (a torn line): read again, seen rows stay seen
                    fh.seek(start)
                    data = fh.read()
                end = data.rfind(b"\n") + 1
                self._offsets[path] = start + end
                with self._lock:
                    for line in data[:end].split(b"\n")[:-1]:
                        if line == HEADER:
                            continue
                        with contextlib.suppress(ValueError):
                            ts = datetime.fromisoformat(line.split(b",", 1)[0].decode())
                            self.seen.setdefault((meter, ts.timestamp()), now)
                            self.newest[meter] = max(self.newest.get(meter, 0.0), ts.timestamp())

    def flowing_since(self, since: float) -> bool:
        """Every meter has a row of a reading sampled after ``since``."""
        with self._lock:
            return all(self.newest.get(m, 0.0) > since for m in self.meters)

    def longest_delay(self, since: float, until: float | None = None) -> float:
        """The longest time from a reading's timestamp to its row being seen, over the
        readings sampled from ``since`` on (until ``until``)."""
        with self._lock:
            delays = [
                seen - ts
                for (_meter, ts), seen in self.seen.items()
                if ts >= since and (until is None or ts <= until)
            ]
        return max(delays, default=0.0)


class ClusterRig:
    """Three meterd and two shards of pvsimd (an active one and a standby each) on the
    cluster, and the faults."""

    def __init__(self, cluster: BrokerCluster, root: Path, run: ClusterRun):
        self.cluster = cluster
        self.run = run
        self.site = Site(root=root, broker_url=cluster.url(), daemon_url=" ".join(cluster.urls))
        self.pvsimds: dict[str, DaemonProcess] = {}  # "shard0-a", "shard0-b", ...
        self.meters: dict[str, DaemonProcess] = {}
        self.watch = RowWatch(self.site.output, METERS)
        self.shards = 2
        self.pvsimd_keys: dict[str, object] = {}  # more [broker] keys for every pvsimd

    # --- the daemons --------------------------------------------------------------------

    def pvsimd_config(self, name: str, shard: int, shards: int) -> Path:
        keys = {**BROKER_KEYS, **self.pvsimd_keys, "shards": shards, "shard": shard}
        path = self.site.pvsimd_config(broker=keys)
        return path.rename(self.site.root / f"{name}.ini")

    def start_pvsimd(self, name: str, shard: int, shards: int = 2) -> DaemonProcess:
        proc = self.site.start("pvsimd", self.pvsimd_config(name, shard, shards), name)
        self.pvsimds[name] = proc
        self.wait(lambda: "consuming from queue" in proc.log(), 30, f"{name} consuming")
        return proc

    def start_meter(self, meter: str) -> DaemonProcess:
        self.meters[meter] = self.site.start_meterd(meter, INTERVAL, broker=BROKER_KEYS)
        return self.meters[meter]

    def start(self, **pvsimd_keys: object) -> None:
        """The shards' active pvsimd in order (shard 0's queue bound first: the hash
        ring's buckets follow the order of the bindings), their standbys, the meters."""
        self.pvsimd_keys = pvsimd_keys
        self.watch.start()
        for shard in range(self.shards):
            self.start_pvsimd(f"shard{shard}-a", shard)
        for shard in range(self.shards):
            self.start_pvsimd(f"shard{shard}-b", shard)
        for meter in METERS:
            self.start_meter(meter)
        self.wait_progress(20)
        for shard in range(self.shards):  # every shard has meters: its first pvsimd claims it
            self.wait(
                lambda s=shard: f"shard {s}: active" in self.pvsimds[f"shard{s}-a"].log(),
                30,
                f"shard {shard}'s first pvsimd active",
            )
        self.run.baseline = self.watch.longest_delay(time.time() - 3)

    def active(self, shard: int) -> str:
        """The name of the shard's active pvsimd: the one whose pid its claim holds."""
        lock = self.site.output / f".{self.shard_queue(shard)}" / ".lock"
        pid = int(lock.read_text())
        for name, proc in self.pvsimds.items():
            if proc.pid == pid and proc.running():
                return name
        raise AssertionError(f"no running pvsimd has pid {pid} ({lock})\n{self.tails()}")

    def logs(self) -> dict[str, str]:
        return {
            name: proc.log() for name, proc in [*self.pvsimds.items(), *self.meters.items()]
        }

    def tails(self, lines: int = 10) -> str:
        return tier_runs.tails(self.logs(), lines)

    def wait(self, predicate: Callable[[], object], timeout: float, what: str) -> object:
        return tier_runs.wait_showing_logs(predicate, timeout, what, self.logs, 10)

    # --- progress and the checks after each fault -----------------------------------------

    def row_counts(self) -> dict[str, int]:
        return {m: len(seqs_written(self.site, m)) for m in METERS}

    def wait_progress(self, rows: int, timeout: float = 60) -> None:
        base = self.row_counts()
        self.wait(
            lambda: all(n >= base[m] + rows for m, n in self.row_counts().items()),
            timeout,
            f"{rows} more rows for every meter (from {base})",
        )

    def check_so_far(self, timeout: float = 60) -> None:
        """No row twice so far, and every seq up to each meter's newest row is there
        (waiting, with a deadline, for backlogs and redeliveries)."""
        for meter in METERS:
            seqs = []
            for path in self.site.files(meter):
                for line in path.read_bytes().split(b"\n")[1:]:
                    fields = line.split(b",")
                    if len(fields) == HEADER.count(b",") + 1:
                        seqs.append(int(fields[-1]))
            doubled = [s for s, n in Counter(seqs).items() if n > 1]
            assert not doubled, f"{meter}: rows doubled, seq {doubled[:10]}\n{self.tails()}"

        def contiguous() -> bool:
            return all(
                (s := seqs_written(self.site, m)) == set(range(max(s) + 1)) for m in METERS
            )

        self.wait(contiguous, timeout, "every meter's rows contiguous up to its newest")

    def failover(self, kind: str, began: float) -> float:
        """After a fault that began at ``began``: wait until rows of readings sampled
        after it flow for every meter and the backlog is written, then record the
        longest delay of a reading sampled from half a second before it."""
        now = time.time()
        self.wait(
            lambda: self.watch.flowing_since(now),
            90,
            "rows of readings sampled after the fault for every meter",
        )
        self.check_so_far()
        self.watch.poll()
        seconds = self.watch.longest_delay(began - 0.5)
        self.run.fault(kind, seconds)
        return seconds

    # --- faults ---------------------------------------------------------------------------

    def shard_queue(self, shard: int) -> str:
        return f"{self.site.queue}.{shard}"

    def kill_leader(self, shard: int) -> BrokerNode:
        """SIGKILL the node leading the shard's queue; returns it (down)."""
        node = self.cluster.leader(self.shard_queue(shard))
        began = time.time()
        node.kill()
        self.failover("leader node SIGKILL", began)
        return node

    def kill_active_pvsimd(self, shard: int, measure: bool = True) -> str:
        """SIGKILL the shard's active pvsimd; the standby takes over; the killed one is
        started again (the new standby).  Returns the name of the new active one.
        ``measure``: record the failover time (else only the checks)."""
        name = self.active(shard)
        standby = next(n for n in self.pvsimds if n.startswith(f"shard{shard}-") and n != name)
        marks = len(self.pvsimds[standby].log())
        began = time.time()
        self.pvsimds[name].kill()
        self.wait(
            lambda: f"shard {shard}: active" in self.pvsimds[standby].log()[marks:],
            60,
            f"{standby} taking over shard {shard}",
        )
        if measure:
            self.failover("active pvsimd SIGKILL", began)
        else:
            self.check_so_far()
        self.start_pvsimd(name, shard, self.shards)
        return standby

    def kill_active_pvsimd_with_journal_rows(self, shard: int) -> str:
        """Let the shard's active pvsimd fall behind (SIGSTOP), then SIGKILL it while its
        journal holds rows; returns the name of the one that took over (and replayed
        them).  Both pvsimd of the shard must run with a small prefetch."""
        name = self.active(shard)
        proc = self.pvsimds[name]
        standby = next(n for n in self.pvsimds if n.startswith(f"shard{shard}-") and n != name)
        marks = len(self.pvsimds[standby].log())
        journal = self.site.output / f".{self.shard_queue(shard)}" / ".journal"
        began = time.time()
        proc.signal(signal.SIGSTOP)
        try:
            time.sleep(1.5)  # the fault itself: its readings pile up in the queue
        finally:
            proc.signal(signal.SIGCONT)
        wait_until(lambda: journal.stat().st_size > 0, timeout=10, interval=0.001,
                   message="rows in the journal")  # fmt: skip
        proc.kill()
        self.wait(
            lambda: f"shard {shard}: active" in self.pvsimds[standby].log()[marks:],
            60,
            f"{standby} taking over shard {shard}",
        )
        self.failover("active pvsimd SIGKILL, rows in its journal", began)
        log = self.pvsimds[standby].log()[marks:]
        taken = re.search(r"journal: (\d+) rows of the last run", log)
        assert taken and int(taken.group(1)) > 0, f"{standby} wrote no journal rows\n{self.tails()}"
        self.start_pvsimd(name, shard, self.shards)
        return standby

    def node_of(self, meter: str) -> BrokerNode:
        """The node a meterd is connected to now (its last "connected to" line)."""
        log = self.meters[meter].log()
        ports = re.findall(r"connected to amqp://[^@]+@127\.0\.0\.1:(\d+)/", log)
        assert ports, f"meterd {meter} never connected\n{self.tails()}"
        return self.cluster.by_port(int(ports[-1]))

    def stop_node_of(self, meter: str) -> BrokerNode:
        node = self.node_of(meter)
        marks = len(self.meters[meter].log())
        began = time.time()
        node.stop()
        self.wait(
            lambda: "connected to" in self.meters[meter].log()[marks:],
            60,
            f"meterd {meter} connected to another node",
        )
        self.failover("meterd's node stopped", began)
        assert self.node_of(meter) is not node
        return node

    def restart_node(self, node: BrokerNode, kind: str | None = None) -> None:
        """Stop (if running) and start a node, and wait until the cluster is whole and
        every quorum queue has its members back; ``kind``: count it as a fault."""
        began = time.time()
        if node.is_running():
            node.stop()
        node.start()
        self.cluster.wait_healthy()
        if kind is not None:
            self.failover(kind, began)
        else:
            self.check_so_far()

    def add_shard(self) -> DaemonProcess:
        """Start a pvsimd for a third shard while readings flow."""
        began = time.time()
        self.shards = 3
        proc = self.start_pvsimd("shard2-a", 2, shards=3)
        self.failover("shard added", began)
        return proc

    # --- the end of every run --------------------------------------------------------------

    def finish(self) -> Figures:
        """Stop the meters, let the pvsimd write everything they assigned, stop them,
        check every meter's rows."""
        problems: list[str] = []
        for proc in self.meters.values():
            proc.signal(signal.SIGTERM)
        for meter, proc in self.meters.items():
            rc = _exit_code(proc, 30)
            if rc != 0:
                problems.append(f"meterd {meter} exited with {rc} after SIGTERM")
        assigned = {m: self.site.assigned(m) for m in METERS}

        def everything_written() -> bool:
            return all(set(range(n)) <= seqs_written(self.site, m) for m, n in assigned.items())

        try:
            wait_until(
                everything_written,
                timeout=60,
                message=f"the pvsimd writing every assigned reading {assigned}",
            )
        except AssertionError as exc:
            problems.append(str(exc))
        for proc in self.pvsimds.values():
            if proc.running():
                proc.signal(signal.SIGTERM)
        for name, proc in self.pvsimds.items():
            if proc.proc.returncode == -signal.SIGKILL:
                continue  # killed by the test
            rc = _exit_code(proc, 30)
            if rc != 0:
                problems.append(f"{name} exited with {rc} after SIGTERM")
        self.watch.stop()
        for name, text in self.logs().items():
            if "Traceback" in text:
                problems.append(f"{name}.log holds a traceback (a bug, exit 70)")
        if problems:
            problems.append(self.tails(20))
        return assert_exactly_once(self.site, METERS, self.run, problems)

    def rows_written_by(self, name: str) -> int:
        """What a stopped pvsimd says it wrote ("N rows since start")."""
        found = re.findall(r": (\d+) rows since start", self.pvsimds[name].log())
        return int(found[-1]) if found else 0

    def cleanup(self) -> None:
        self.watch.stop()
        for proc in [*self.pvsimds.values(), *self.meters.values()]:
            proc.kill()
        queues = [self.site.queue, self.site.dead_letter_queue] + [
            self.shard_queue(k) for k in range(3)
        ]
        exchanges = [self.site.exchange, f"{self.site.queue}.shards"]
        with contextlib.suppress(Exception):
            conn = pika.BlockingConnection(pika.URLParameters(self.cluster.url()))
            try:
                for q in queues:
                    ch = conn.channel()
                    with contextlib.suppress(pika.exceptions.AMQPError):
                        ch.queue_delete(q)
                for x in exchanges:
                    ch = conn.channel()
                    with contextlib.suppress(pika.exceptions.AMQPError):
                        ch.exchange_delete(x)
            finally:
                with contextlib.suppress(Exception):
                    conn.close()


def _exit_code(proc: DaemonProcess, timeout: float) -> int | str:
    try:
        return proc.proc.wait(timeout=timeout)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
        proc.kill()
        return f"nothing (still running after {timeout:g} s, SIGKILLed)"

