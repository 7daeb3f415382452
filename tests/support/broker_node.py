"""A throwaway RabbitMQ node of our own, for fault-injection tests.

``BrokerNode`` runs the Debian ``rabbitmq-server`` as a child process (in its
own process group, not ``-detached``, so we hold its PID), with every file it
writes under ``base_dir`` and ports of its own, so the system broker on
127.0.0.1:5672 is never touched.  Tests can SIGKILL it (:meth:`kill`), stop it
gracefully (:meth:`stop`) and start it again on the same data
(:meth:`restart`)::

    with BrokerNode(tmp_path / "node") as node:
        connect(node.url)
        node.kill()
        node.restart()

Isolation details (RabbitMQ 3.10):

* ``RABBITMQ_CONF_ENV_FILE`` points at an empty file of ours, so
  /etc/rabbitmq/rabbitmq-env.conf (which sets ``NODENAME=rabbit@localhost``)
  is not read; ``RABBITMQ_CONFIG_FILE`` / ``RABBITMQ_ADVANCED_CONFIG_FILE`` /
  ``RABBITMQ_ENABLED_PLUGINS_FILE`` point at files of ours (no plugins, so
  nothing binds 15672).
* ``HOME`` is ``base_dir/home``: the node and ``rabbitmqctl`` share an Erlang
  cookie of their own there, whoever runs the tests.
* The scripts of /usr/lib/rabbitmq/bin are used, not the /usr/sbin wrappers,
  which would ``su rabbitmq`` (another HOME, another cookie, another user).
* The node name (``pvsimtest-<random>@localhost``) is kept in
  ``base_dir/nodename``: a later BrokerNode on the same base_dir reuses it, as
  the Mnesia data belongs to the node name.
* epmd (port 4369) is shared with the system broker; it is never killed.

TLS is off unless ``tls=TlsListener(...)`` is given: the node then also listens for
AMQPS on 127.0.0.1:``amqps_port`` with those certificate files (``amqps_url``); the
plain listener stays, for the fixtures' own checks.

Clusters: nodes given the same ``cookie`` (written to their own HOME before the first
start) can form one; :meth:`BrokerNode.join_cluster` joins a running node to another
one's cluster (``stop_app``, ``join_cluster``, ``start_app``).  ``plugins`` are enabled
from the start (the node's own enabled_plugins file), e.g.
``("rabbitmq_consistent_hash_exchange",)``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pika

from .wait import wait_until

_LIB_BIN = Path("/usr/lib/rabbitmq/bin")

# rabbitmqctl's own distribution ports (RABBITMQ_CTL_DIST_PORT_MIN..MAX).
_CTL_DIST_PORTS = range(35672, 35683)

_live_nodes: weakref.WeakSet[BrokerNode] = weakref.WeakSet()


def _tool(name: str) -> str:
    path = _LIB_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: is rabbitmq-server installed?")
    return found


def _free_port(exclude: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in exclude and port not in _CTL_DIST_PORTS:
            return port


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _ppid_and_pgid(pid: int) -> tuple[int, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ..." - comm may contain spaces and parens
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[2])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _process_tree(root_pid: int) -> set[int]:
    """root_pid, its descendants and the members of its process group.

    erl_child_setup and inet_gethost call setsid(), so they leave the process
    group: they are found as descendants of beam.smp.  epmd is left alone.
    """
    parents: dict[int, int] = {}
    group: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        info = _ppid_and_pgid(int(entry))
        if info is None:
            continue
        parents[int(entry)] = info[0]
        if info[1] == root_pid:
            group.add(int(entry))
    tree = {root_pid} | group
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return {pid for pid in tree if _comm(pid) != "epmd"}


@dataclass(frozen=True)
class TlsListener:
    """The node's TLS listener: its certificate and how it treats client certificates."""

    cacertfile: Path
    certfile: Path
    keyfile: Path
    verify_peer: bool = False  # ask for a client certificate and check it against cacertfile
    fail_if_no_peer_cert: bool = False  # ... and refuse clients without one

    def config_lines(self, port: int) -> list[str]:
        return [
            f"listeners.ssl.default = 127.0.0.1:{port}",
            f"ssl_options.cacertfile = {Path(self.cacertfile).resolve()}",
            f"ssl_options.certfile = {Path(self.certfile).resolve()}",
            f"ssl_options.keyfile = {Path(self.keyfile).resolve()}",
            f"ssl_options.verify = {'verify_peer' if self.verify_peer else 'verify_none'}",
            f"ssl_options.fail_if_no_peer_cert = {str(self.fail_if_no_peer_cert).lower()}",
        ]


class BrokerNode:
    """A RabbitMQ node of our own on 127.0.0.1, with its data under base_dir."""

    def __init__(
        self,
        base_dir: Path,
        amqp_port: int | None = None,
        tls: TlsListener | None = None,
        *,
        cookie: str | None = None,
        plugins: tuple[str, ...] = (),
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        name_file = self.base_dir / "nodename"
        if name_file.exists():
            self.nodename = name_file.read_text().strip()
        else:
            self.nodename = f"pvsimtest-{secrets.token_hex(4)}@localhost"
            name_file.write_text(self.nodename + "\n")
        taken = {4369, 5672, 15672, 25672}
        self.amqp_port = amqp_port if amqp_port is not None else _free_port(taken)
        self.dist_port = _free_port(taken | {self.amqp_port})
        self.tls = tls
        self.cookie = cookie
        self.plugins = tuple(plugins)
        self.amqps_port = (
            _free_port(taken | {self.amqp_port, self.dist_port}) if tls is not None else None
        )
        self.home_dir = self.base_dir / "home"
        self.mnesia_base = self.base_dir / "mnesia"
        self.log_dir = self.base_dir / "log"
        self.console_log = self.log_dir / "console.log"
        self.log_file = self.log_dir / f"{self.nodename}.log"
        self.pid_file = self.base_dir / f"{self.nodename}.pid"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_files()
        self.env = self._make_env()

    # -- files and environment ---------------------------------------------

    def _write_files(self) -> None:
        for d in (self.home_dir, self.mnesia_base, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "rabbitmq-env.conf").write_text(
            "# empty on purpose: keeps /etc/rabbitmq/rabbitmq-env.conf out\n"
        )
        (self.base_dir / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")
        if self.cookie is not None:
            cookie = self.home_dir / ".erlang.cookie"
            with contextlib.suppress(FileNotFoundError):
                cookie.chmod(0o600)
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)  # Erlang refuses a cookie file others may read
        (self.base_dir / "advanced.config").write_text("[].\n")
        (self.base_dir / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    "loopback_users = none",
                    f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
                    "disk_free_limit.absolute = 50MB",
                    "log.console = false",
                    "log.file.level = info",
                    *(self.tls.config_lines(self.amqps_port) if self.tls is not None else []),
                    "",
                ]
            )
        )

    def _make_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RABBITMQ_", "ERL_")) and k != "NOTIFY_SOCKET"
        }
        env.update(
            HOME=str(self.home_dir),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_CONF_ENV_FILE=str(self.base_dir / "rabbitmq-env.conf"),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_USE_LONGNAME="false",
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.mnesia_base),
            RABBITMQ_MNESIA_DIR=str(self.mnesia_base / self.nodename),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base_dir / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.base_dir / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base_dir / "advanced.config"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    # -- public API ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def amqps_url(self) -> str:
        """The TLS listener (``tls=`` given), by the name in the server certificate."""
        if self.amqps_port is None:
            raise RuntimeError("this node has no TLS listener (BrokerNode(tls=...))")
        return f"amqps://guest:guest@localhost:{self.amqps_port}/%2F"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start the node; return once a pika connection to it succeeds."""
        if self.is_running():
            return
        if _port_open(self.amqp_port):
            raise RuntimeError(f"port {self.amqp_port} is already taken")
        with open(self.console_log, "ab") as out:
            self._proc = subprocess.Popen(
                [_tool("rabbitmq-server")],
                env=self.env,
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _live_nodes.add(self)
        proc = self._proc

        def up() -> str | None:
            if proc.poll() is not None:
                return "exited"
            if not _port_open(self.amqp_port):
                return None
            if not self._amqp_ok():
                return None
            return "up"

        try:
            state = wait_until(up, timeout=timeout, interval=0.2, message=f"{self.nodename} not up")
        except AssertionError as exc:
            self.kill()
            raise AssertionError(f"{exc}\n{self._log_tail()}") from None
        if state == "exited":
            rc = proc.returncode
            self.kill()
            raise RuntimeError(
                f"{self.nodename} exited with {rc} while starting\n{self._log_tail()}"
            )

    def kill(self) -> None:
        """SIGKILL the node's whole process tree; return once the port is closed."""
        proc = self._proc
        if proc is None:
            return
        # The tree is read while the shell (our child, not yet reaped) still
        # holds it together, so no pid in it can belong to anybody else.
        pids = _process_tree(proc.pid) if proc.poll() is None else set()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in pids - {proc.pid}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        wait_until(
            lambda: not _port_open(self.amqp_port) and not any(_alive(p) for p in pids),
            timeout=30,
            message=f"{self.nodename} still alive after SIGKILL",
        )
        self._after_exit()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop gracefully with ``rabbitmqctl stop``; SIGKILL if that fails."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self.ctl("stop", timeout=timeout)
                proc.wait(timeout=timeout)
            except (subprocess.SubprocessError, OSError):
                pass
        # Also sweeps up anything left over.
        self.kill()

    def restart(self, timeout: float = 60.0) -> None:
        """Start again on the same data (stopping gracefully first if running)."""
        if self.is_running():
            self.stop()
        self.start(timeout=timeout)

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``rabbitmqctl -n NODENAME ARGS`` against this node only."""
        return subprocess.run(
            [_tool("rabbitmqctl"), "-n", self.nodename, *args],
            env=self.env,
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    def join_cluster(self, seed: BrokerNode, timeout: float = 120.0) -> None:
        """Make this running node a member of ``seed``'s cluster (the same cookie);
        its own data (queues, users) is reset first."""
        self.ctl("stop_app", timeout=timeout)
        self.ctl("reset", timeout=timeout)
        self.ctl("join_cluster", seed.nodename, timeout=timeout)
        self.ctl("start_app", timeout=timeout)
        self.ctl("await_startup", timeout=timeout)

    def __enter__(self) -> BrokerNode:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<BrokerNode {self.nodename} amqp={self.amqp_port} {state}>"

    # -- internals -------------------------------------------------------------

    def _amqp_ok(self) -> bool:
        params = pika.URLParameters(
            self.url + "?connection_attempts=1&socket_timeout=2&stack_timeout=5"
        )
        try:
            conn = pika.BlockingConnection(params)
        except Exception:  # not up yet; pika raises several kinds
            return False
        with contextlib.suppress(Exception):
            conn.close()
        return True

    def _after_exit(self) -> None:
        self._proc = None
        _live_nodes.discard(self)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()

    def _log_tail(self, lines: int = 30) -> str:
        out = []
        for f in (self.console_log, self.log_file):
            with contextlib.suppress(OSError):
                tail = f.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {f}\n" + "\n".join(tail))
        return "\n".join(out)


@atexit.register
def _kill_leftover_nodes() -> None:
    for node in list(_live_nodes):
        with contextlib.suppress(Exception):
            node.kill()
