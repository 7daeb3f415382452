"""A throwaway RabbitMQ cluster of our own: three :class:`BrokerNode` on this machine.

Each node has its own name, ports, data and log directories and config files
(:mod:`tests.support.broker_node`); they share an Erlang cookie and the plugins given
(``rabbitmq_consistent_hash_exchange`` for shards).  :meth:`BrokerCluster.start` starts
the nodes side by side, then joins the second and third to the first
(``join_cluster``); about 15 s on two cores.  The system broker on 127.0.0.1:5672 is
never touched::

    with BrokerCluster(tmp_path / "cluster") as cluster:
        cluster.urls            # one amqp:// URL per node
        cluster.leader("q")     # the node leading a quorum queue
        cluster.nodes[1].kill(); cluster.nodes[1].start(); cluster.wait_healthy()
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
from pathlib import Path
from types import TracebackType

from .broker_node import BrokerNode, _tool
from .wait import wait_until


class BrokerCluster:
    """``size`` nodes under ``base_dir`` forming one cluster."""

    def __init__(self, base_dir: Path, size: int = 3, plugins: tuple[str, ...] = ()):
        self.base_dir = Path(base_dir)
        cookie_file = self.base_dir / "cookie"
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if not cookie_file.exists():
            cookie_file.write_text("PVSIMTEST" + secrets.token_hex(12).upper())
        cookie = cookie_file.read_text()
        self.nodes = [
            BrokerNode(self.base_dir / f"node{i}", cookie=cookie, plugins=plugins)
            for i in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def by_name(self, nodename: str) -> BrokerNode:
        return next(node for node in self.nodes if node.nodename == nodename)

    def by_port(self, port: int) -> BrokerNode:
        return next(node for node in self.nodes if node.amqp_port == port)

    def running(self) -> list[BrokerNode]:
        return [node for node in self.nodes if node.is_running()]

    def url(self) -> str:
        """The URL of a running node (for the tests' own checks)."""
        return self.running()[0].url

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """rabbitmqctl against a running node."""
        return self.running()[0].ctl(*args, timeout=timeout).stdout

    def start(self, timeout: float = 120.0) -> None:
        """Start every node side by side, then form the cluster."""
        errors: list[BaseException] = []

        def start(node: BrokerNode) -> None:
            try:
                node.start(timeout=timeout)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(n,)) for n in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        for node in self.nodes[1:]:
            node.join_cluster(self.nodes[0], timeout=timeout)
        self.wait_healthy(timeout)

    def running_nodes(self) -> list[str]:
        """The nodes the cluster sees running."""
        status = json.loads(self.ctl("cluster_status", "--formatter", "json"))
        return sorted(status["running_nodes"])

    def wait_healthy(self, timeout: float = 120.0) -> None:
        """Every node running and in the cluster, and none of them critical for a quorum
        queue (each queue has its members back; RabbitMQ's own check)."""
        want = sorted(node.nodename for node in self.nodes)

        def healthy() -> bool:
            if self.running_nodes() != want:
                return False
            for node in self.nodes:
                node.ctl("await_startup", timeout=timeout)
                # exit 0 when stopping this node would leave every quorum queue a quorum
                self._queues_tool(node, "check_if_node_is_quorum_critical")
            return True

        wait_until(healthy, timeout=timeout, interval=0.5, message="cluster healthy")

    def _queues_tool(self, node: BrokerNode, *args: str) -> None:
        subprocess.run(
            [_tool("rabbitmq-queues"), "-n", node.nodename, *args],
            env=node.env,
            cwd=node.base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

    def leader(self, queue: str) -> BrokerNode:
        """The node leading quorum queue ``queue``."""
        for row in json.loads(self.ctl("list_queues", "name", "leader", "--formatter", "json")):
            if row["name"] == queue:
                return self.by_name(row["leader"])
        raise LookupError(f"no queue {queue}")

    def members(self, queue: str) -> list[str]:
        for row in json.loads(self.ctl("list_queues", "name", "members", "--formatter", "json")):
            if row["name"] == queue:
                return sorted(row["members"])
        raise LookupError(f"no queue {queue}")

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()

    def __enter__(self) -> BrokerCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
