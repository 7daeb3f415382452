"""Run meterd and pvsimd as real subprocesses with temporary configs, and read their CSV.

The daemons run with the interpreter running the tests (``sys.executable -m meterd``),
so the same tests exercise Debian's pika/tenacity and the current PyPI releases.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pika

from pvsim import wire

REPO = Path(__file__).resolve().parents[2]
LOCAL_BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"


def require_local_broker() -> str:
    """The broker on this machine, whose URL is returned; a test that needs it fails (not
    skips) when it does not answer."""
    import pytest

    try:
        pika.BlockingConnection(pika.URLParameters(LOCAL_BROKER)).close()
    except pika.exceptions.AMQPError as exc:
        pytest.fail(f"no RabbitMQ at {LOCAL_BROKER} ({exc!r}); run scripts/ensure-rabbitmq")
    return LOCAL_BROKER


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def write_ini(path: Path, sections: dict[str, dict[str, object]]) -> Path:
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {v}" for k, v in keys.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class DaemonProcess:
    """One daemon subprocess; its stderr goes to a log file the test can read."""

    def __init__(self, program: str, config: Path, log_path: Path, *extra: str):
        self.program = program
        self.config = config
        self.log_path = log_path
        self.extra = extra
        self.proc: subprocess.Popen | None = None

    def start(self) -> DaemonProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.program, "--config", str(self.config), *self.extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=REPO,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; the exit code (fails the test when it does not stop in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Site:
    """A temporary installation: configs, state, output, and the daemons started on it."""

    root: Path
    broker_url: str = LOCAL_BROKER  # where the test itself talks to the broker
    daemon_url: str | None = None  # where the daemons do (e.g. through a proxy)
    exchange: str = field(default_factory=lambda: unique("test.readings"))
    queue: str = field(default_factory=lambda: unique("test.pvsimd"))
    timezone: str = "Europe/Berlin"
    processes: list[DaemonProcess] = field(default_factory=list)

    @property
    def dead_letter_queue(self) -> str:
        return self.queue + ".invalid"

    @property
    def output(self) -> Path:
        return self.root / "csv"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def pvsimd_config(self, **overrides: dict[str, object]) -> Path:
        sections: dict[str, dict[str, object]] = {
            "site": {"latitude": 52.52, "longitude": 13.405, "timezone": self.timezone},
            "broker": {
                "url": self.daemon_url or self.broker_url,
                "exchange": self.exchange,
                "queue": self.queue,
                "dead_letter_queue": self.dead_letter_queue,
                "retry_initial": 0.2,
                "retry_max": 1,
            },
            "output": {"directory": self.output, "flush_interval": 0.05},
            # the tests publish as one shared user (guest) without user_id; the
            # security tests turn verification on
            "security": {"verify_sender": "no"},
            # tests run side by side on one machine: no fixed metrics port
            "metrics": {"listen": ""},
            "logging": {"level": "info"},
        }
        for section, keys in overrides.items():
            sections.setdefault(section, {}).update(keys)
        return write_ini(self.root / "pvsimd.ini", sections)

    def meterd_config(self, meter_id: str, interval: float = 0.05, **overrides: dict) -> Path:
        sections: dict[str, dict[str, object]] = {
            "meter": {"id": meter_id, "interval": interval, "state_directory": self.state},
            "broker": {
                "url": self.daemon_url or self.broker_url,
                "exchange": self.exchange,
                "retry_initial": 0.2,
                "retry_max": 1,
            },
            "spool": {"fsync": "no"},
            "metrics": {"listen": ""},
        }
        for section, keys in overrides.items():
            sections.setdefault(section, {}).update(keys)
        return write_ini(self.root / f"meterd-{meter_id}.ini", sections)

    def start(self, program: str, config: Path, name: str | None = None) -> DaemonProcess:
        name = name or config.stem
        proc = DaemonProcess(program, config, self.root / f"{name}.log").start()
        self.processes.append(proc)
        return proc

    def start_pvsimd(self, **overrides: dict) -> DaemonProcess:
        return self.start("pvsimd", self.pvsimd_config(**overrides))

    def start_meterd(self, meter_id: str, interval: float = 0.05, **overrides: dict):  # noqa: ANN201
        return self.start("meterd", self.meterd_config(meter_id, interval, **overrides))

    # --- what a user would look at -----------------------------------------------------

    def files(self, meter_id: str) -> list[Path]:
        return sorted((self.output / meter_id).glob("*.csv"))

    def rows(self, meter_id: str) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        for path in self.files(meter_id):
            with open(path, newline="") as fh:
                rows.extend(csv.DictReader(fh))
        return rows

    def seqs(self, meter_id: str) -> list[int]:
        return [int(r["seq"]) for r in self.rows(meter_id)]

    def assigned(self, meter_id: str) -> int:
        """How many readings meterd assigned a seq to (its spool's next seq)."""
        from meterd.spool import Spool

        spool = Spool(self.state / meter_id / "spool", fsync=False)
        spool.open()
        try:
            return spool.next_seq
        finally:
            spool.close()

    def cleanup(self) -> None:
        for proc in self.processes:
            proc.kill()
        delete_broker_objects(
            self.broker_url,
            exchanges=[self.exchange],
            queues=[self.queue, self.dead_letter_queue],
        )


def delete_broker_objects(url: str, exchanges: list[str], queues: list[str]) -> None:
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
    except pika.exceptions.AMQPError:
        return
    try:
        ch = conn.channel()
        for q in queues:
            ch.queue_delete(q)
        for x in exchanges:
            ch.exchange_delete(x)
    finally:
        conn.close()


def publish_raw(
    url: str,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: pika.BasicProperties | None = None,
) -> None:
    """Publish one message as an arbitrary AMQP client would (with confirms)."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(exchange, routing_key, body, properties or pika.BasicProperties())
    finally:
        conn.close()


def publish_readings(url: str, exchange: str, meters: int, rounds: int) -> list[tuple[str, int]]:
    """Publish ``rounds`` readings of each of ``meters`` meters (m0, m1, …; seq = round,
    10 s apart on 21 June 2026), round by round as meters send them, with confirms;
    returns (meter_id, seq) of each."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    sent = []
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange, "topic", durable=True)
        ch.confirm_delivery()
        base = datetime(2026, 6, 21, 10, tzinfo=UTC)
        for r in range(rounds):
            for m in range(meters):
                reading = wire.Reading(f"m{m}", base + timedelta(seconds=10 * r), 100.0 + m, r)
                ch.basic_publish(
                    exchange,
                    wire.routing_key(reading.meter_id),
                    wire.encode(reading),
                    pika.BasicProperties(delivery_mode=2, content_type=wire.CONTENT_TYPE),
                )
                sent.append((reading.meter_id, r))
    finally:
        conn.close()
    return sent


def drain_queue(url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """Take every message off a queue (e.g. the dead letters) and return them."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    messages = []
    try:
        ch = conn.channel()
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return messages
            messages.append((props, body))
    finally:
        conn.close()


def queue_depth(url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()
