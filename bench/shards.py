"""Benchmark: draining a backlog with 1 shard and with 2 on the same machine, and what
the broker itself costs.

The same N readings from M meters (drain.py's messages) are preloaded, through the
readings exchange as meters publish them, into

* **1 shard**: today's layout — the exchange bound to one quorum queue — drained by one
  pvsimd with its defaults (its own output directory, no shared mode);
* **2 shards**: the exchange bound to the consistent-hash exchange bound to two shard
  queues, drained by two pvsimd side by side (``shards = 2``, ``shard = 0`` and ``1``)
  writing one shared output directory (every file under its lock).

Both run on a RabbitMQ node of the benchmark's own (the consistent-hash plugin
enabled); with ``--cluster`` also on three nodes of its own (quorum queues replicated
three times), to measure what the replication costs.  Measured per configuration:

* drain: from the moment every pvsimd logged "consuming" to the newest CSV mtime once
  all N rows are there; readings/s;
* CPU seconds (utime + stime, /proc) of each pvsimd and of the broker's processes (the
  whole tree of each node), during the preload (publish, route, enqueue: the meters'
  side) and during the drain (deliver, acknowledge: pvsimd's side), per reading;
* the broker's share: its CPU seconds over all CPU seconds spent in the drain, and its
  CPU as a share of the machine (``nproc`` cores × the drain's seconds).

On two cores the broker and both pvsimd share the CPU: two shards cannot drain twice as
fast here.  The per-reading costs are what the capacity model (docs/scaling.md) uses.

The preload is one connection pumping readings without confirms; meters are many
connections, each publishing one reading now and then with a confirm.  So the broker's
cost per reading is also measured that way (:func:`publishers`): C connections (as
many meterd), each with a channel in confirm mode, publishing one reading per round,
round after round, 50 of them at a time (threads) — CPU per reading, and the broker's
memory per connection.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from bench.common import (
    Broker,
    Context,
    Result,
    count_rows,
    cpu_seconds,
    loadavg,
    make_meter_directories,
    preload,
    say,
    sender_map_file,
    unique,
)
from bench.drain import build_messages


def tree_cpu(nodes: list) -> float:  # noqa: ANN001 - BrokerNode (tests/support)
    """CPU seconds of every process of these broker nodes."""
    from tests.support.broker_node import _process_tree

    total = 0.0
    for node in nodes:
        proc = node._proc
        if proc is None:
            continue
        for pid in _process_tree(proc.pid):
            try:
                total += cpu_seconds(pid)
            except OSError:
                pass  # a helper process that has just exited
    return total


class ShardDrain:
    """One layout (1 or 2 shards) on one broker: declare, preload, drain, measure."""

    def __init__(self, ctx: Context, nodes: list, shards: int, meters: int, readings: int):
        self.ctx = ctx
        self.nodes = nodes
        self.shards = shards
        self.meters = meters
        self.readings = readings
        self.exchange = unique("bench.readings")
        self.queue = unique("bench.pvsimd")
        self.dir = ctx.workdir / unique(f"shards{shards}")
        self.dir.mkdir()
        self.sender_map = sender_map_file(self.dir / "senders", meters)

    @property
    def topologies(self) -> list:
        from pvsim.topology import Topology

        base = Topology(self.exchange, self.queue, self.queue + ".invalid")
        if self.shards == 1:
            return [base]
        return [replace(base, shards=self.shards, shard=k) for k in range(self.shards)]

    def declare(self) -> None:
        """What the pvsimd declare at start, declared before the preload."""
        broker: Broker = self.ctx.broker
        ch = broker.channel()
        ch.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        broker.exchanges.append(self.exchange)
        for t in self.topologies:
            if t.hash_exchange is not None:
                ch.exchange_declare(t.hash_exchange.name, t.hash_exchange.type, durable=True)
                if t.hash_exchange.name not in broker.exchanges:
                    broker.exchanges.append(t.hash_exchange.name)
                e2e = t.exchange_binding
                ch.exchange_bind(e2e.queue, e2e.exchange, routing_key=e2e.routing_key)
            for q in t.queues:
                ch.queue_declare(q.name, durable=q.durable, arguments=q.arguments)
                if q.name not in broker.queues:
                    broker.queues.append(q.name)
            b = t.binding
            ch.queue_bind(b.queue, b.exchange, routing_key=b.routing_key)

    def depth(self) -> int:
        return sum(self.ctx.broker.depth(t.consumed) for t in self.topologies)

    def run(self, messages: list) -> dict[str, float]:
        self.declare()
        cpu0 = tree_cpu(self.nodes)
        per0 = [tree_cpu([n]) for n in self.nodes]
        t0 = time.perf_counter()

        def queued() -> None:
            deadline = time.monotonic() + 600
            while self.depth() < self.readings:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"preloaded {self.depth()} of {self.readings}")
                time.sleep(0.2)

        preload(self.ctx.url, self.exchange, messages, queued)
        preload_s = time.perf_counter() - t0
        broker_preload = tree_cpu(self.nodes) - cpu0
        per1 = [tree_cpu([n]) for n in self.nodes]
        say(f"  [{self.shards} shard(s)] preloaded {self.readings} in {preload_s:.1f} s")

        out_dir = self.dir / "csv"
        make_meter_directories(out_dir, self.meters)
        load = loadavg()
        daemons = []
        for t in self.topologies:
            broker = {"shards": t.shards, "shard": t.shard} if t.sharded else {}
            config = self.ctx.pvsimd_ini(
                self.dir / f"pvsimd-{t.shard}.ini",
                exchange=self.exchange,
                queue=self.queue,
                output_dir=out_dir,
                sender_map=self.sender_map,
                broker=broker,
            )
            daemons.append(self.ctx.daemon("pvsimd", config, self.dir / f"pvsimd-{t.shard}.log"))
        try:
            ready = max(d.wait_for_log(r"consuming from queue") for d in daemons)
            pv0 = [cpu_seconds(d.pid) for d in daemons]
            b0 = tree_cpu(self.nodes)
            per2 = [tree_cpu([n]) for n in self.nodes]
            deadline = time.monotonic() + 900
            while True:
                rows, _files, newest = count_rows(out_dir)
                if rows >= self.readings:
                    break
                for d in daemons:
                    if d.proc.poll() is not None:
                        raise RuntimeError(f"pvsimd exited:\n{d.log()[-2000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError("the drain took too long")
                time.sleep(0.05)
            pv1 = [cpu_seconds(d.pid) for d in daemons]
            b1 = tree_cpu(self.nodes)
            per3 = [tree_cpu([n]) for n in self.nodes]
        finally:
            codes = [d.stop() for d in daemons]
        if any(codes):
            raise RuntimeError(f"pvsimd exit codes {codes}")
        rows, _, _ = count_rows(out_dir)
        left = self.depth()
        if rows != self.readings or left:
            raise RuntimeError(f"{rows} rows of {self.readings}, {left} left in the queues")
        secs = newest / 1e9 - ready
        pvsimd_cpu = sum(b - a for a, b in zip(pv0, pv1, strict=True))
        broker_drain = b1 - b0
        per_node: dict[str, float] = {}
        if len(self.nodes) > 1:  # which node does how much (the queues' leader: node 0)
            for i in range(len(self.nodes)):
                per_node[f"node{i}_preload_us"] = (per1[i] - per0[i]) / self.readings * 1e6
                per_node[f"node{i}_drain_us"] = (per3[i] - per2[i]) / self.readings * 1e6
        return {
            **per_node,
            "drain_s": secs,
            "rate": self.readings / secs,
            "pvsimd_cpu_us": pvsimd_cpu / self.readings * 1e6,
            "pvsimd_cpu_pct": 100 * pvsimd_cpu / secs,  # of one core
            "broker_preload_us": broker_preload / self.readings * 1e6,
            "broker_drain_us": broker_drain / self.readings * 1e6,
            "broker_share_pct": 100 * broker_drain / max(1e-9, broker_drain + pvsimd_cpu),
            "broker_machine_pct": 100 * broker_drain / (secs * os.cpu_count()),
            "preload_rate": self.readings / preload_s,
            "load": load,
        }

    def cleanup(self) -> None:
        broker = self.ctx.broker
        queues = [q.name for t in self.topologies for q in t.queues]
        exchanges = [self.exchange] + [
            t.hash_exchange.name for t in self.topologies[:1] if t.hash_exchange is not None
        ]
        broker.cleanup_some(exchanges=exchanges, queues=list(dict.fromkeys(queues)))


def run(
    ctx: Context, nodes: list, runs: int, meters: int, readings: int, name: str = "shards"
) -> Result:
    say(
        f"[{name}] drain with 1 and 2 shards: {readings} readings from {meters} meters, "
        f"{len(nodes)} broker node(s), {runs} run(s)"
    )
    t = time.perf_counter()
    messages = build_messages(meters, readings)
    say(f"  built {readings} messages in {time.perf_counter() - t:.1f} s")
    result = Result(name, info={"meters": meters, "readings": readings, "nodes": len(nodes)})
    for i in range(runs):
        figures: dict[str, float] = {}
        order = (1, 2) if i % 2 == 0 else (2, 1)
        for shards in order:
            bench = ShardDrain(ctx, nodes, shards, meters, readings)
            try:
                for key, value in bench.run(messages).items():
                    figures[f"s{shards}_{key}"] = value
            finally:
                bench.cleanup()
        figures["speedup"] = figures["s2_rate"] / figures["s1_rate"]
        result.add(**figures)
        say(
            f"  run {i + 1}: 1 shard {figures['s1_rate']:,.0f}/s, 2 shards "
            f"{figures['s2_rate']:,.0f}/s (× {figures['speedup']:.2f}); pvsimd "
            f"{figures['s1_pvsimd_cpu_us']:.0f} / {figures['s2_pvsimd_cpu_us']:.0f} µs CPU "
            f"per reading; broker {figures['s1_broker_preload_us']:.0f} µs to take a "
            f"reading in, {figures['s1_broker_drain_us']:.0f} / "
            f"{figures['s2_broker_drain_us']:.0f} µs to hand it out; broker's share of "
            f"the drain's CPU {figures['s1_broker_share_pct']:.0f} / "
            f"{figures['s2_broker_share_pct']:.0f} %"
        )
    return result


def start_nodes(workdir: Path, cluster: bool) -> list:
    """A node (or a three-node cluster) of our own with the consistent-hash plugin."""
    from pvsim.topology import HASH_PLUGIN
    from tests.support.broker_cluster import BrokerCluster
    from tests.support.broker_node import BrokerNode

    if cluster:
        c = BrokerCluster(workdir / "cluster", plugins=(HASH_PLUGIN,))
        c.start()
        return c.nodes
    node = BrokerNode(workdir / "shards-node", plugins=(HASH_PLUGIN,))
    node.start()
    return [node]


def publishers(ctx: Context, nodes: list, connections: int, rounds: int) -> dict[str, float]:
    """The broker's CPU per reading when many connections publish one reading each with
    a confirm, and its memory per connection (RSS of the node's processes)."""
    import pika

    from pvsim import wire
    from tests.support.broker_node import _process_tree

    def rss_kb() -> int:
        total = 0
        for node in nodes:
            for pid in _process_tree(node._proc.pid):
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
                except OSError:
                    pass
        return total

    exchange, queue = unique("bench.readings"), unique("bench.pvsimd")
    ctx.broker.declare_readings(exchange, queue, queue + ".invalid")
    base_rss = rss_kb()
    params = pika.URLParameters(ctx.url)
    params.heartbeat = 0
    conns = []
    try:
        for _ in range(connections):
            conn = pika.BlockingConnection(params)
            ch = conn.channel()
            ch.confirm_delivery()
            conns.append((conn, ch))
        time.sleep(2)  # let the broker settle its new processes' memory
        per_connection_kb = (rss_kb() - base_rss) / connections
        import threading

        from bench.drain import BASE_TS

        threads = 50
        sent = [0] * threads
        failed: list[BaseException] = []

        def publish(k: int) -> None:
            try:
                for r in range(rounds):
                    for i in range(k, len(conns), threads):
                        meter = f"bench-p{i:05d}"
                        body = wire.encode(wire.Reading(meter, BASE_TS, 100.0, r))
                        conns[i][1].basic_publish(
                            exchange,
                            wire.routing_key(meter),
                            body,
                            pika.BasicProperties(delivery_mode=2, content_type=wire.CONTENT_TYPE),
                        )
                        sent[k] += 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                failed.append(exc)

        workers = [threading.Thread(target=publish, args=(k,)) for k in range(threads)]
        cpu0 = tree_cpu(nodes)
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if failed:
            raise failed[0]
        sent = sum(sent)
        secs = time.perf_counter() - t0
        cpu = tree_cpu(nodes) - cpu0
    finally:
        for conn, _ch in conns:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
        ctx.broker.cleanup_some(exchanges=[exchange], queues=[queue, queue + ".invalid"])
    return {
        "connections": connections,
        "readings": sent,
        "broker_publish_us": cpu / sent * 1e6,
        "rate": sent / secs,
        "connection_kb": per_connection_kb,
    }
