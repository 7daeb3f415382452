"""The fault-injection rig: three meters and pvsimd on a broker node of our own, reached
through a TCP proxy, and the faults a test injects into them.

Every fault is counted in the test's :class:`FaultRun` (kind and number), and every run
ends with :meth:`Rig.finish`: stop the meters (SIGTERM, exit 0), wait until pvsimd has
written every reading meterd assigned a seq to, stop pvsimd (exit 0), then
:func:`assert_exactly_once`.

Tests never sleep to wait: they wait on conditions with deadlines (``wait_until``).  The
only sleeps are fault durations ("keep the network stalled 6 s"), which *are* the fault.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.support import tier_runs
from tests.support.broker_node import BrokerNode
from tests.support.daemons import DaemonProcess, Site, queue_depth
from tests.support.tcp_proxy import TcpProxy
from tests.support.wait import wait_until

HOUSES = ("house-a", "house-b", "house-c")
INTERVAL = 0.02  # s between samples: 3 meters x 50/s = 150 readings/s
HEARTBEAT = 2  # s; a stall is noticed within a few seconds
RETRY_INITIAL = 0.2
RETRY_MAX = 1.0  # the backoff cap, s
BROKER_KEYS = {
    "heartbeat": HEARTBEAT,
    "connect_timeout": 3,
    "retry_initial": RETRY_INITIAL,
    "retry_max": RETRY_MAX,
}
HEADER = b"timestamp,meter_id,meter_w,pv_w,sum_w,seq"
FIELDS = HEADER.count(b",") + 1

# What each kind of fault does (docs/reliability.md lists them).
FAULT_KINDS = {
    "broker SIGKILL": "the RabbitMQ node's whole process tree is SIGKILLed while readings "
    "flow, then started again on the same data (down for its ~6 s start)",
    "broker unreachable": f"the proxy cuts every connection and refuses new ones for "
    f"{3 * RETRY_MAX:g} s, three times the backoff cap (retry_max = {RETRY_MAX:g} s)",
    "connection cut": "the proxy resets (RST) every connection, both sides, while "
    "readings flow; every other cut first holds the traffic for up to 0.3 s, so that the "
    "reset drops publishes, confirms, deliveries and acks in flight",
    "network stall": f"the proxy forwards nothing for {3 * HEARTBEAT} s (heartbeat "
    f"{HEARTBEAT} s) with the sockets left open, then forwards again",
    "pvsimd SIGKILL": "pvsimd is SIGKILLed at a seeded random moment (after a random "
    "amount of traffic plus up to 100 ms) and started again",
    "pvsimd SIGKILL with acks lost": "the network stalls for 0.6 s, longer than pvsimd's "
    "flush interval, so it writes rows whose acks are held in the network; then pvsimd "
    "is SIGKILLed and every connection reset: the broker redelivers rows already written",
    "meterd SIGKILL": "a meterd is SIGKILLed at a seeded random moment and started "
    "again; its spool carries the sequence on",
    "disk full": "pvsimd's output directory is a small tmpfs that fills up; it holds "
    "the readings unacknowledged until space is freed",
    "spool overflow": "the broker is unreachable long enough for meterd's spool "
    "([spool] max_bytes = 4K, about 35 readings) to overflow: it drops the oldest "
    "unpublished readings and names their seqs in a WARNING",
}


@dataclass
class Figures:
    readings: int = 0  # seqs assigned by meterd (its spool's next seq)
    rows: int = 0
    lost: int = 0
    duplicated: int = 0
    torn: int = 0
    unexpected: int = 0  # rows with a seq meterd never assigned
    dropped: int = 0  # seqs meterd's spool bound dropped and reported (not counted lost)

    def __iadd__(self, other: Figures) -> Figures:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


@dataclass
class FaultRun:
    """What one test did and what came out: collected for docs/reliability.md."""

    nodeid: str
    faults: Counter = field(default_factory=Counter)
    figures: Figures | None = None
    outcome: str = "not run"
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.nodeid.rsplit("::", 1)[-1]

    def fault(self, kind: str) -> None:
        assert kind in FAULT_KINDS, kind
        self.faults[kind] += 1

    def describe_faults(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in self.faults.items()) or "none"


# --- reading the CSV files while pvsimd writes them ------------------------------------


def _complete_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].split(b"\n")[:-1]


def row_count(site: Site, meter: str) -> int:
    """Complete rows of a meter so far (a line being written is not counted)."""
    return sum(sum(1 for line in _complete_lines(p) if line != HEADER) for p in site.files(meter))


def seqs_written(site: Site, meter: str) -> set[int]:
    seqs = set()
    for path in site.files(meter):
        for line in _complete_lines(path):
            fields = line.split(b",")
            if line != HEADER and len(fields) == FIELDS:
                with contextlib.suppress(ValueError):
                    seqs.add(int(fields[-1]))
    return seqs


def newest_row_age(site: Site, meter: str) -> float | None:
    """Seconds between now and the newest row's timestamp (None: no row yet)."""
    for path in reversed(site.files(meter)):
        lines = [line for line in _complete_lines(path) if line != HEADER]
        if lines:
            ts = datetime.fromisoformat(lines[-1].split(b",", 1)[0].decode())
            return time.time() - ts.timestamp()
    return None


# --- the check -------------------------------------------------------------------------


def _ranges(values: Iterable[int], limit: int = 8) -> str:
    values = sorted(values)
    out: list[str] = []
    for v in values:
        if out and out[-1][1] == v - 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    text = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in out[:limit])
    return text + (f" and {len(out) - limit} more ranges" if len(out) > limit else "")


_DROPPED = re.compile(r"dropped the \d+ oldest unpublished readings, seq ([0-9, -]+)")


def reported_drops(log: str) -> set[int]:
    """The seqs a meterd log reports as dropped by its spool bound."""
    dropped: set[int] = set()
    for ranges in _DROPPED.findall(log):
        for part in ranges.split(","):
            first, _, last = part.strip().partition("-")
            dropped.update(range(int(first), int(last or first) + 1))
    return dropped


def exactly_once_figures(
    site: Site, meters: Iterable[str], dropped: dict[str, set[int]] | None = None
) -> tuple[Figures, list[str]]:
    """The figures of every meter's CSV files against its spool, and the violations.

    ``dropped``: per meter, the seqs meterd reported dropped by its spool bound; they
    may be missing (a dropped reading that was already on its way may still arrive)."""
    total = Figures()
    violations: list[str] = []
    for meter in meters:
        assigned = site.assigned(meter)
        gone = (dropped or {}).get(meter, set())
        seqs: list[int] = []
        stamps: list[bytes] = []
        torn = 0
        for path in site.files(meter):
            data = path.read_bytes()
            lines = data.split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            else:
                torn += 1
                violations.append(f"{path}: last line has no newline: {lines[-1][:80]!r}")
                lines.pop()
            if not lines or lines[0] != HEADER:
                torn += 1
                violations.append(f"{path}: line 1 is not the header: {data[:80]!r}")
            for number, line in enumerate(lines, 1):
                if line == HEADER:
                    if number != 1:
                        torn += 1
                        violations.append(f"{path}:{number}: header again")
                    continue
                fields = line.split(b",")
                try:
                    if len(fields) != FIELDS:
                        raise ValueError(f"{len(fields)} fields")
                    seq = int(fields[-1])
                except ValueError as exc:
                    torn += 1
                    violations.append(f"{path}:{number}: torn line ({exc}): {line[:100]!r}")
                    continue
                seqs.append(seq)
                stamps.append(fields[0])
        distinct = set(seqs)
        expected = set(range(assigned))
        figures = Figures(
            readings=assigned,
            rows=len(seqs),
            lost=len(expected - distinct - gone),
            dropped=len(gone),
            duplicated=max(len(seqs) - len(distinct), len(stamps) - len(set(stamps))),
            torn=torn,
            unexpected=len(distinct - expected),
        )
        if figures.lost:
            violations.append(
                f"{meter}: {figures.lost} of {assigned} readings have no row, "
                f"seq {_ranges(expected - distinct - gone)}"
            )
        if figures.duplicated:
            doubled = [s for s, n in Counter(seqs).items() if n > 1]
            violations.append(
                f"{meter}: {figures.duplicated} rows doubled, seq {_ranges(doubled)}"
                f" (or timestamps doubled: {len(stamps) - len(set(stamps))})"
            )
        if figures.unexpected:
            violations.append(
                f"{meter}: rows with seqs meterd never assigned (next seq {assigned}): "
                f"{_ranges(distinct - expected)}"
            )
        total += figures
    return total, violations


def assert_exactly_once(
    site: Site,
    meters: Iterable[str],
    run: FaultRun | None = None,
    problems: Iterable[str] = (),
    dropped: dict[str, set[int]] | None = None,
) -> Figures:
    """Every seq meterd assigned (0..next seq - 1) is exactly one row, less those its
    spool bound reported dropped; no torn line; the header once per file at line 1.
    Records the figures in ``run`` before asserting, so a failed run still shows what
    was lost.  Call with every daemon stopped."""
    figures, violations = exactly_once_figures(site, meters, dropped)
    if run is not None:
        run.figures = figures
    problems = [*problems, *violations]
    assert not problems, f"exactly-once violated ({figures}):\n  " + "\n  ".join(problems[:40])
    return figures


# --- the rig ---------------------------------------------------------------------------


class Rig:
    """Three meterd and one pvsimd through ``proxy`` to ``node``, and the faults."""

    def __init__(self, node: BrokerNode, proxy: TcpProxy, site: Site, run: FaultRun):
        self.node = node
        self.proxy = proxy
        self.site = site
        self.run = run
        self.meters: dict[str, DaemonProcess] = {}
        self.pvsimd: DaemonProcess | None = None
        self.pvsimd_overrides: dict[str, dict[str, object]] = {}
        self.meter_overrides: dict[str, dict[str, object]] = {}
        self.mounted: Path | None = None

    # --- daemons -----------------------------------------------------------------------

    def start(self, **pvsimd_overrides: dict[str, object]) -> None:
        """pvsimd (consuming, so the queue is bound), then the three meters."""
        self.pvsimd_overrides = pvsimd_overrides
        self.start_pvsimd()
        self.wait(lambda: "consuming from queue" in self.pvsimd.log(), 30, "pvsimd consuming")
        for meter in HOUSES:
            self.start_meter(meter)

    def start_pvsimd(self) -> DaemonProcess:
        overrides = dict(self.pvsimd_overrides)
        overrides["broker"] = {**BROKER_KEYS, **overrides.get("broker", {})}
        self.pvsimd = self.site.start_pvsimd(**overrides)
        return self.pvsimd

    def start_meter(self, meter: str) -> DaemonProcess:
        overrides = {**self.meter_overrides, "broker": BROKER_KEYS}
        self.meters[meter] = self.site.start_meterd(meter, INTERVAL, **overrides)
        return self.meters[meter]

    def logs(self) -> dict[str, str]:
        names = ["pvsimd", *(f"meterd-{m}" for m in self.meters)]
        return {
            name: (self.site.root / f"{name}.log").read_text(errors="replace")
            for name in names
            if (self.site.root / f"{name}.log").exists()
        }

    def log_marks(self) -> dict[str, int]:
        return {name: len(text) for name, text in self.logs().items()}

    def logs_since(self, marks: dict[str, int]) -> dict[str, str]:
        return {name: text[marks.get(name, 0) :] for name, text in self.logs().items()}

    def _tails(self, lines: int = 12) -> str:
        return tier_runs.tails(self.logs(), lines, ".log")

    def wait(self, predicate: Callable[[], object], timeout: float, what: str) -> object:
        """wait_until, with the daemons' log tails in the failure message."""
        return tier_runs.wait_showing_logs(predicate, timeout, what, self.logs, 12, ".log")

    # --- progress ----------------------------------------------------------------------

    def row_counts(self) -> dict[str, int]:
        return {m: row_count(self.site, m) for m in HOUSES}

    def wait_progress(
        self, rows: int, meters: Iterable[str] = HOUSES, timeout: float = 30
    ) -> dict[str, int]:
        """Wait until each of ``meters`` has ``rows`` more rows than now."""
        meters = tuple(meters)
        base = self.row_counts()

        def grown() -> dict[str, int] | None:
            now = self.row_counts()
            return now if all(now[m] >= base[m] + rows for m in meters) else None

        return self.wait(grown, timeout, f"{rows} more rows for each of {meters} (from {base})")

    def wait_caught_up(self, lag: float = 2.0, timeout: float = 60) -> None:
        """Wait until every meter's newest row is at most ``lag`` s old (no backlog)."""

        def fresh() -> bool:
            ages = [newest_row_age(self.site, m) for m in HOUSES]
            return all(a is not None and a <= lag for a in ages)

        self.wait(fresh, timeout, f"every meter's newest row at most {lag} s old")

    # --- faults ------------------------------------------------------------------------

    def kill_broker(self) -> None:
        """SIGKILL the node and start it again on its data (the start is the outage)."""
        self.run.fault("broker SIGKILL")
        self.node.kill()
        self.node.start()

    def broker_unreachable(self, seconds: float = 3 * RETRY_MAX) -> None:
        """Cut every connection and refuse new ones for ``seconds``, then accept again."""
        self.run.fault("broker unreachable")
        self.proxy.refuse(True)
        self.proxy.cut()
        try:
            time.sleep(seconds)  # the fault itself: the broker is unreachable this long
        finally:
            self.proxy.refuse(False)

    def cut(self, hold: float = 0.0) -> None:
        """Reset every connection; with ``hold``, first keep the traffic of the last
        ``hold`` seconds in the network, so that it is in flight when the reset drops it."""
        self.run.fault("connection cut")
        if not hold:
            self.proxy.cut()
            return
        self.proxy.stall()
        try:
            time.sleep(hold)  # the fault itself: publishes, confirms, acks held in flight
            self.proxy.cut()
        finally:
            self.proxy.resume()

    def stall(self, seconds: float = 3 * HEARTBEAT) -> None:
        self.run.fault("network stall")
        self.proxy.stall()
        try:
            time.sleep(seconds)  # the fault itself: nothing gets through this long
        finally:
            self.proxy.resume()

    def kill_pvsimd(self, restart: bool = True) -> None:
        self.run.fault("pvsimd SIGKILL")
        assert self.pvsimd.running(), f"pvsimd died before the kill:\n{self._tails()}"
        self.pvsimd.kill()
        if restart:
            self.start_pvsimd()

    def kill_pvsimd_acks_lost(self, hold: float = 0.6) -> None:
        """Stall, so that pvsimd's next flush is written but its ack held in the
        network; SIGKILL pvsimd, reset every connection (the ack is lost), restart it."""
        self.run.fault("pvsimd SIGKILL with acks lost")
        assert self.pvsimd.running(), f"pvsimd died before the kill:\n{self._tails()}"
        self.proxy.stall()
        try:
            time.sleep(hold)  # the fault itself: pvsimd flushes, its acks stay in the network
            self.pvsimd.kill()
            self.proxy.cut()
        finally:
            self.proxy.resume()
        self.start_pvsimd()

    def kill_meter(self, meter: str, restart: bool = True) -> None:
        self.run.fault("meterd SIGKILL")
        proc = self.meters[meter]
        assert proc.running(), f"meterd {meter} died before the kill:\n{self._tails()}"
        proc.kill()
        if restart:
            self.start_meter(meter)

    def mount_output(self, size: str) -> Path:
        """Make pvsimd's output directory a tmpfs of ``size`` (unmounted at teardown)."""
        out = self.site.output
        out.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(out)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"mount tmpfs on {out} (needs root): {result.stderr}"
        self.mounted = out
        return out

    def fill_output(self, leave: int = 32 * 1024) -> Path:
        """Fill the output tmpfs with a filler file but ``leave`` bytes (the disk-full
        fault: pvsimd's own rows use those up within a few seconds)."""
        self.run.fault("disk full")
        st = os.statvfs(self.mounted)
        size = max(0, st.f_bavail * st.f_frsize - leave)
        filler = self.mounted / "filler"
        chunk = b"\0" * (1 << 16)
        with open(filler, "wb") as fh:
            try:
                while size > 0:
                    size -= fh.write(chunk[: min(size, len(chunk))])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:  # pvsimd took the rest meanwhile: full
                    raise
        return filler

    def remount_output(self, size: str) -> None:
        result = subprocess.run(
            ["mount", "-o", f"remount,size={size}", str(self.mounted)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"remount {self.mounted}: {result.stderr}"

    def unmount(self) -> None:
        if self.mounted is None:
            return
        if subprocess.run(["umount", str(self.mounted)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(self.mounted)], capture_output=True)
        self.mounted = None

    def queue_depth(self) -> int:
        return queue_depth(self.site.broker_url, self.site.queue)

    # --- the end of every run ----------------------------------------------------------

    def finish(self) -> Figures:
        """Stop the meters, let pvsimd write everything they assigned, stop it, check."""
        problems: list[str] = []
        try:
            self.wait_caught_up()  # no backlog left for meterd's drain on SIGTERM
        except AssertionError as exc:
            problems.append(f"not caught up before stopping: {exc}")
        for proc in self.meters.values():  # one SIGTERM each, all at once
            proc.signal(signal.SIGTERM)
        for meter, proc in self.meters.items():
            rc = _wait_exit(proc, 20)
            if rc != 0:
                problems.append(f"meterd {meter} exited with {rc} after SIGTERM")
        assigned = {m: self.site.assigned(m) for m in self.meters}
        dropped = {m: reported_drops(self.logs().get(f"meterd-{m}", "")) for m in self.meters}
        due = {m: set(range(n)) - dropped[m] for m, n in assigned.items()}
        try:
            wait_until(
                lambda: all(due[m] <= seqs_written(self.site, m) for m in self.meters),
                timeout=60,
                message=f"pvsimd writing every assigned reading {assigned} "
                f"(less {sum(map(len, dropped.values()))} reported dropped)",
            )
        except AssertionError as exc:
            problems.append(str(exc))
        self.pvsimd.signal(signal.SIGTERM)
        rc = _wait_exit(self.pvsimd, 20)
        if rc != 0:
            problems.append(f"pvsimd exited with {rc} after SIGTERM")
        for name, text in self.logs().items():
            if "Traceback" in text:
                problems.append(f"{name}.log holds a traceback (a bug, exit 70)")
        if problems:
            problems.append(self._tails(20))
        return assert_exactly_once(self.site, self.meters, self.run, problems, dropped)


def _wait_exit(proc: DaemonProcess, timeout: float) -> int | str:
    """The exit code, or a note when it did not exit in time (then SIGKILLed)."""
    try:
        return proc.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return f"nothing (still running after {timeout:g} s, SIGKILLed)"


def lost_lines(text: str) -> list[str]:
    """The lines where a daemon reports its connection lost."""
    return [line for line in text.splitlines() if re.search(r"connection to .* lost", line)]
