"""``pvsim-broker-setup``: provision RabbitMQ for pvsim with least privilege, idempotently.

Run on the broker host (it drives ``rabbitmqctl``), once and again whenever a house is
added; a second run with the same arguments changes nothing.  It makes

* the virtual host (``pvsim`` by default), the durable topic exchange of readings, and
  pvsimd's two quorum queues with exactly the arguments pvsimd declares (so pvsimd's own
  declarations succeed), bound with ``reading.*``; with ``--replicas N`` each queue has N
  replicas on a cluster; with ``--shards N`` the consistent-hash exchange and the N shard
  queues instead of the one readings queue (:mod:`pvsim.topology`), after making sure the
  ``rabbitmq_consistent_hash_exchange`` plugin is enabled on every running node (it
  enables it on the node it talks to and names the others), and on a cluster the shard
  queues' leaders are spread over the nodes (``rabbitmq-queues rebalance quorum``);
* a policy bounding the dead-letter queue (a forging house cannot fill the broker's disk);
* one broker user per meter, named like the meter, allowed only to publish its own
  readings: configure ``^$``, write the exchange, read ``^$``, and the topic permission
  ``^reading\\.<meter>$`` on the exchange; at most a few connections;
* the pvsimd user: configure its exchange and queues (pvsimd declares them at start),
  write its queue (the binding) and ``amq.default`` (dead letters are republished through
  the default exchange), read its queue and the exchange (the binding); with shards, the
  hash exchange too and every ``<queue>.<number>`` (a shard added later needs no new
  permission).

A cluster is provisioned like a single node, from any of its nodes: users, permissions,
queues and policies are the cluster's.  ``--url`` may be given once per node; the
printed drop-ins then list every node.

New users get a random password (:mod:`secrets`), written to ``--secrets-dir`` as
``<user>.password`` (mode 0600) or printed once; existing users keep theirs.  With
``--definitions FILE`` nothing is applied: the same set-up is written as RabbitMQ
definitions JSON (password hashes: ``rabbit_password_hashing_sha256``) for
``rabbitmqctl import_definitions`` or the management API.  At the end it prints, per
house, the meterd drop-in that uses the new user (and one for pvsimd).

New users are added with ``rabbitmqctl add_user`` reading the password from standard
input, so no password appears in a process list.  rabbitmqctl has no command to declare
exchanges or queues; those go through ``rabbitmqctl import_definitions`` (from standard
input), which works asynchronously, so the result is polled until it is in place.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from pvsim import __version__, topology, wire
from pvsim.topology import DEFAULT_EXCHANGE, Topology

PROG = "pvsim-broker-setup"
HASHING = "rabbit_password_hashing_sha256"
POLICY_NAME = "pvsim-dead-letters"
EX_OK, EX_FAILED, EX_USAGE = 0, 1, 2

_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,255}")


class ProvisionError(Exception):
    """Something the operator must fix; one line."""


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password)),
    with a random 4-byte salt."""
    salt = os.urandom(4) if salt is None else salt
    if len(salt) != 4:
        raise ValueError("the salt is 4 bytes")
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def new_password() -> str:
    return secrets.token_urlsafe(24)  # 32 characters, URL-safe


def rx(name: str) -> str:
    """``name`` as a literal in a permission regex."""
    return re.sub(r"([.\\^$|?*+()\[\]{}])", r"\\\1", name)


def exactly(*names: str) -> str:
    """A permission regex matching exactly these names."""
    if len(names) == 1:
        return f"^{rx(names[0])}$"
    return "^(" + "|".join(rx(n) for n in names) + ")$"


NOTHING = "^$"


def matching(names: Sequence[str], pattern: str) -> str:
    """A permission regex matching exactly these names and what ``pattern`` matches."""
    return "^(" + "|".join([*(rx(n) for n in names), pattern]) + ")$"


@dataclass(frozen=True)
class Permission:
    """A user's configure, write and read permission regexes in one virtual host."""

    configure: str
    write: str
    read: str


@dataclass(frozen=True)
class Layout:
    """What pvsim needs on the broker; the names must match pvsimd's config."""

    meters: tuple[str, ...]
    vhost: str = "pvsim"
    exchange: str = DEFAULT_EXCHANGE
    queue: str = topology.DEFAULT_QUEUE
    dead_letter_queue: str = topology.DEFAULT_DEAD_LETTER_QUEUE
    delivery_limit: int = topology.DEFAULT_DELIVERY_LIMIT
    pvsimd_user: str = "pvsimd"
    dead_letter_max_length: int = 100_000  # 0: no policy
    max_connections: int = 5  # per meter user; 0: no limit
    replicas: int | None = None  # x-quorum-initial-group-size; None: not declared
    shards: int = 1

    def __post_init__(self) -> None:
        for meter in self.meters:
            if not wire.METER_ID_RE.fullmatch(meter):
                raise ProvisionError(f"{meter!r} is no meter id (1-64 letters, digits, - or _)")
        for what, name in (
            ("exchange", self.exchange),
            ("queue", self.queue),
            ("dead-letter queue", self.dead_letter_queue),
            ("pvsimd user", self.pvsimd_user),
        ):
            if not _NAME_RE.fullmatch(name):
                raise ProvisionError(f"{what} {name!r}: 1-255 letters, digits, '.', '_', ':', '-'")
        if self.pvsimd_user in self.meters:
            raise ProvisionError(f"the pvsimd user {self.pvsimd_user!r} is also a meter id")
        if self.queue == self.dead_letter_queue:
            raise ProvisionError("the queue and the dead-letter queue must differ")
        if not self.vhost:
            raise ProvisionError("the virtual host name must not be empty")
        if self.replicas is not None and not 1 <= self.replicas <= 99:
            raise ProvisionError(f"--replicas must be 1 to 99, got {self.replicas}")
        if not 1 <= self.shards <= 1000:
            raise ProvisionError(f"--shards must be 1 to 1000, got {self.shards}")

    @property
    def users(self) -> tuple[str, ...]:
        return (*self.meters, self.pvsimd_user)

    def permission(self, user: str) -> Permission:
        if user == self.pvsimd_user:
            hash_exchange = self.topology.hash_exchange
            if hash_exchange is not None:
                # shards: the hash exchange (declared; bound to the exchange, which
                # needs write on it; queues bound to it, which needs read) and every
                # shard queue, also those of shards added later
                shards = rx(self.queue) + r"\.[0-9]+"
                return Permission(
                    configure=matching(
                        [self.exchange, hash_exchange.name, self.dead_letter_queue], shards
                    ),
                    write=matching(["amq.default", hash_exchange.name], shards),
                    read=matching([self.exchange, hash_exchange.name], shards),
                )
            return Permission(
                # pvsimd declares the exchange and both queues at every start
                configure=exactly(self.exchange, self.queue, self.dead_letter_queue),
                # queue.bind needs write on the queue; dead letters are republished
                # through the default exchange, whose resource name is amq.default
                write=exactly("amq.default", self.queue),
                # consuming; queue.bind needs read on the exchange
                read=exactly(self.exchange, self.queue),
            )
        # a meter publishes to the exchange, nothing else (its exchange.declare is passive)
        return Permission(configure=NOTHING, write=exactly(self.exchange), read=NOTHING)

    def topic_permission(self, user: str) -> Permission | None:
        """Only for meters: the routing keys they may publish on the exchange."""
        if user == self.pvsimd_user:
            return None
        return Permission(configure="", write=exactly(wire.routing_key(user)), read=NOTHING)

    def limits(self, user: str) -> dict[str, int]:
        if user == self.pvsimd_user or self.max_connections <= 0:
            return {}
        return {"max-connections": self.max_connections, "max-channels": 4 * self.max_connections}

    # --- the objects, as RabbitMQ definitions ------------------------------------------

    @property
    def topology(self) -> Topology:
        """What pvsimd declares with the same names (pvsim.topology); with shards, the
        first shard's pvsimd (:meth:`shard_topologies` has them all)."""
        return Topology(
            exchange=self.exchange,
            queue=self.queue,
            dead_letter_queue=self.dead_letter_queue,
            delivery_limit=self.delivery_limit,
            replicas=self.replicas,
            shards=self.shards,
        )

    def shard_topologies(self) -> list[Topology]:
        """What each shard's pvsimd declares (one, unsharded)."""
        t = self.topology
        return [replace(t, shard=k) for k in range(self.shards)]

    def exchange_defs(self) -> list[dict[str, Any]]:
        exchanges = [self.topology.readings_exchange]
        if self.topology.hash_exchange is not None:
            exchanges.append(self.topology.hash_exchange)
        return [
            {
                "name": exchange.name,
                "vhost": self.vhost,
                "type": exchange.type,
                "durable": exchange.durable,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for exchange in exchanges
        ]

    def exchange_def(self) -> dict[str, Any]:
        return self.exchange_defs()[0]

    def queue_defs(self) -> list[dict[str, Any]]:
        queues = [self.topology.dead_letters] + [t.readings for t in self.shard_topologies()]
        return [
            {
                "name": queue.name,
                "vhost": self.vhost,
                "durable": queue.durable,
                "auto_delete": False,
                "arguments": queue.arguments,
            }
            for queue in queues
        ]

    def binding_defs(self) -> list[dict[str, Any]]:
        bindings = [t.binding for t in self.shard_topologies()]
        if self.topology.exchange_binding is not None:
            bindings.insert(0, self.topology.exchange_binding)
        return [
            {
                "source": binding.exchange,
                "vhost": self.vhost,
                "destination": binding.queue,
                "destination_type": "exchange" if binding.to_exchange else "queue",
                "routing_key": binding.routing_key,
                "arguments": {},
            }
            for binding in bindings
        ]

    def binding_def(self) -> dict[str, Any]:
        return self.binding_defs()[0]

    def policy_defs(self) -> list[dict[str, Any]]:
        if self.dead_letter_max_length <= 0:
            return []
        return [
            {
                "vhost": self.vhost,
                "name": POLICY_NAME,
                "pattern": exactly(self.dead_letter_queue),
                "apply-to": "queues",
                "priority": 0,
                "definition": {"max-length": self.dead_letter_max_length},
            }
        ]

    def definitions(self, passwords: dict[str, str]) -> dict[str, Any]:
        """Everything as RabbitMQ definitions; users of ``passwords`` with their hashes."""
        users = [
            {
                "name": user,
                "password_hash": password_hash(passwords[user]),
                "hashing_algorithm": HASHING,
                "tags": [],
                "limits": self.limits(user),
            }
            for user in self.users
            if user in passwords
        ]
        permissions = []
        topic_permissions = []
        for user in self.users:
            p = self.permission(user)
            permissions.append(
                {"user": user, "vhost": self.vhost, "configure": p.configure}
                | {"write": p.write, "read": p.read}
            )
            if (t := self.topic_permission(user)) is not None:
                topic_permissions.append(
                    {"user": user, "vhost": self.vhost, "exchange": self.exchange}
                    | {"write": t.write, "read": t.read}
                )
        return {
            "vhosts": [{"name": self.vhost}],
            "users": users,
            "permissions": permissions,
            "topic_permissions": topic_permissions,
            "exchanges": self.exchange_defs(),
            "queues": self.queue_defs(),
            "bindings": self.binding_defs(),
            "policies": self.policy_defs(),
        }


# --- talking to the broker ---------------------------------------------------------------


class Rabbitmqctl:
    """``rabbitmqctl [-n NODE] -q ARGS`` (or another of RabbitMQ's command-line tools:
    rabbitmq-plugins, rabbitmq-queues); raises ProvisionError with its message."""

    def __init__(
        self, command: str = "rabbitmqctl", node: str | None = None, env: dict | None = None
    ):
        self.program = command
        self.node = node
        self.command = [command, *(["-n", node] if node else [])]
        self.env = env

    def on(self, node: str) -> Rabbitmqctl:
        """The same tool against another node of the cluster."""
        return Rabbitmqctl(self.program, node, self.env)

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        try:
            proc = subprocess.run(
                [*self.command, "-q", *args],
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env,
            )
        except FileNotFoundError:
            raise ProvisionError(
                f"{self.command[0]} not found: run this on the broker host "
                f"(or give --{self.tool}), or use --definitions FILE"
            ) from None
        except subprocess.TimeoutExpired:
            raise ProvisionError(f"{self.tool} {args[0]} timed out") from None
        if proc.returncode != 0:
            lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            raise ProvisionError(f"{self.tool} {args[0]} failed: {' '.join(lines[:3])}")
        return proc.stdout

    @property
    def tool(self) -> str:
        """The tool's name (``rabbitmqctl``), for messages."""
        return os.path.basename(self.program)

    def running_nodes(self) -> list[str]:
        """The running nodes of the cluster (one for a single node)."""
        out = self("cluster_status", "--formatter", "json")
        try:
            return list(json.loads(out[out.find("{") :])["running_nodes"])
        except (ValueError, KeyError, TypeError):
            raise ProvisionError("rabbitmqctl cluster_status gave no list of nodes") from None

    def export(self) -> dict[str, Any]:
        """The broker's definitions (vhosts, users, permissions, queues, ...)."""
        out = self("export_definitions", "-", "--format", "json")
        start = out.find("{")
        try:
            return json.loads(out[start:]) if start >= 0 else {}
        except json.JSONDecodeError:
            raise ProvisionError("rabbitmqctl export_definitions gave no JSON") from None


@dataclass
class State:
    """The parts of the broker's definitions we look at, in one vhost."""

    vhosts: set[str]
    users: dict[str, dict[str, Any]]
    permissions: dict[tuple[str, str], Permission]  # (user, vhost)
    topic_permissions: dict[tuple[str, str], Permission]  # (user, exchange) in our vhost
    exchanges: dict[str, dict[str, Any]]
    queues: dict[str, dict[str, Any]]
    bindings: list[dict[str, Any]]
    policies: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, defs: dict[str, Any], vhost: str) -> State:
        def here(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [i for i in items or [] if i.get("vhost") == vhost]

        return cls(
            vhosts={v["name"] for v in defs.get("vhosts") or []},
            users={u["name"]: u for u in defs.get("users") or []},
            permissions={
                (p["user"], p["vhost"]): Permission(p["configure"], p["write"], p["read"])
                for p in defs.get("permissions") or []
            },
            topic_permissions={
                (p["user"], p["exchange"]): Permission("", p["write"], p["read"])
                for p in here(defs.get("topic_permissions"))
            },
            exchanges={x["name"]: x for x in here(defs.get("exchanges"))},
            queues={q["name"]: q for q in here(defs.get("queues"))},
            bindings=here(defs.get("bindings")),
            policies={p["name"]: p for p in here(defs.get("policies"))},
        )


@dataclass
class Report:
    """What a provisioning run changed, what the operator should know, and the new
    passwords."""

    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    new_passwords: dict[str, str] = field(default_factory=dict)

    def change(self, text: str) -> None:
        self.changes.append(text)


def _missing_bindings(state: State, layout: Layout) -> list[dict[str, Any]]:
    def there(want: dict[str, Any]) -> bool:
        return any(
            all(b.get(k) == want[k] for k in ("source", "destination", "routing_key"))
            and b.get("destination_type") == want["destination_type"]
            for b in state.bindings
        )

    return [want for want in layout.binding_defs() if not there(want)]


def _check_existing(state: State, layout: Layout) -> None:
    """Objects that exist with other properties would make pvsimd's declarations fail."""
    for want in layout.exchange_defs():
        have = state.exchanges.get(want["name"])
        if have is not None and (have.get("type") != want["type"] or not have.get("durable")):
            raise ProvisionError(
                f"exchange {want['name']!r} exists as type={have.get('type')} "
                f"durable={have.get('durable')}; pvsim needs a durable {want['type']} exchange"
            )
    for want in layout.queue_defs():
        have = state.queues.get(want["name"])
        if have is None:
            continue
        if (have.get("arguments") or {}) != want["arguments"] or not have.get("durable"):
            raise ProvisionError(
                f"queue {want['name']!r} exists with arguments {have.get('arguments')}, "
                f"but pvsimd declares {want['arguments']}: pvsimd would fail with "
                "PRECONDITION_FAILED; drain and delete it, or match pvsimd's settings"
            )


def enable_hash_plugin(ctl: Rabbitmqctl, plugins: Rabbitmqctl, report: Report) -> None:
    """Shards need the consistent-hash exchange on every running node: enable it on the
    node we talk to; ProvisionError naming the nodes where it is still missing."""

    def missing() -> list[str]:
        nodes = []
        for node in ctl.running_nodes():
            try:
                plugins.on(node)("is_enabled", topology.HASH_PLUGIN)
            except ProvisionError:
                nodes.append(node)
        return nodes

    before = missing()
    if not before:
        return
    plugins("enable", topology.HASH_PLUGIN)
    after = missing()
    for node in before:
        if node not in after:
            report.change(f"plugin {topology.HASH_PLUGIN}: enabled on {node}")
    if after:
        raise ProvisionError(
            f"the plugin {topology.HASH_PLUGIN}, which shards need, is not enabled on "
            f"{', '.join(after)}: run 'rabbitmq-plugins enable {topology.HASH_PLUGIN}' on "
            "each of them (every node of the cluster needs it), then run this again"
        )


def apply(
    layout: Layout,
    ctl: Rabbitmqctl,
    password_for: Callable[[str], str],
    wait: float = 60.0,
    plugins: Rabbitmqctl | None = None,
    queues: Rabbitmqctl | None = None,
) -> Report:
    """Bring the broker to ``layout``; only what differs is changed.  ``plugins`` and
    ``queues`` (rabbitmq-plugins, rabbitmq-queues) are needed with shards."""
    report = Report()
    state = State.read(ctl.export(), layout.vhost)
    _check_existing(state, layout)
    vhost = layout.vhost
    nodes = ctl.running_nodes() if layout.shards > 1 or layout.replicas else []
    if layout.replicas and layout.replicas > len(nodes):
        report.notes.append(
            f"--replicas {layout.replicas} but the cluster has {len(nodes)} running "
            f"node(s): each queue gets a replica on {len(nodes)} of them; add more with "
            "'rabbitmq-queues grow NODE all' once the nodes have joined"
        )
    if layout.shards > 1:
        enable_hash_plugin(ctl, plugins or Rabbitmqctl("rabbitmq-plugins"), report)

    if vhost not in state.vhosts:
        ctl("add_vhost", vhost)
        report.change(f"virtual host {vhost}: created")

    for user in layout.users:
        have = state.users.get(user)
        if have is None:
            password = password_for(user)
            ctl("add_user", user, stdin=password + "\n")  # read from stdin: not in argv
            report.new_passwords[user] = password
            report.change(f"user {user}: created")
        elif have.get("tags"):
            tags = have["tags"]
            tags = ",".join(tags) if isinstance(tags, list) else str(tags)
            ctl("set_user_tags", user)
            report.change(f"user {user}: tags {tags} removed (it needs none)")
        want = layout.permission(user)
        if state.permissions.get((user, vhost)) != want:
            ctl("set_permissions", "-p", vhost, user, want.configure, want.write, want.read)
            report.change(
                f"permissions of {user} in {vhost}: configure {want.configure} "
                f"write {want.write} read {want.read}"
            )
        for (other_user, other_vhost), _p in sorted(state.permissions.items()):
            if other_user == user and other_vhost != vhost:
                report.notes.append(
                    f"user {user} also has permissions in virtual host {other_vhost!r}; "
                    f"remove them unless meant: rabbitmqctl clear_permissions -p "
                    f"'{other_vhost}' {user}"
                )
        topic = layout.topic_permission(user)
        if topic is not None:
            have_topic = state.topic_permissions.get((user, layout.exchange))
            if have_topic is None or (have_topic.write, have_topic.read) != (
                topic.write,
                topic.read,
            ):
                ctl(
                    "set_topic_permissions", "-p", vhost, user, layout.exchange,
                    topic.write, topic.read,
                )  # fmt: skip
                report.change(
                    f"topic permissions of {user} on {layout.exchange}: write {topic.write} "
                    f"read {topic.read}"
                )
        limits = layout.limits(user)
        have_limits = (have or {}).get("limits") or {}
        if limits and have_limits != limits:
            ctl("set_user_limits", user, json.dumps(limits))
            report.change(f"limits of {user}: {json.dumps(limits)}")

    for policy in layout.policy_defs():
        have = state.policies.get(policy["name"])
        same = have is not None and all(
            have.get(k) == policy[k] for k in ("pattern", "apply-to", "definition", "priority")
        )
        if not same:
            ctl(
                "set_policy", "-p", vhost, "--apply-to", policy["apply-to"],
                "--priority", str(policy["priority"]), policy["name"], policy["pattern"],
                json.dumps(policy["definition"]),
            )  # fmt: skip
            report.change(f"policy {policy['name']}: {json.dumps(policy['definition'])}")

    missing: dict[str, list[dict[str, Any]]] = {}
    exchanges = [x for x in layout.exchange_defs() if x["name"] not in state.exchanges]
    if exchanges:
        missing["exchanges"] = exchanges
    new_queues = [q for q in layout.queue_defs() if q["name"] not in state.queues]
    if new_queues:
        missing["queues"] = new_queues
    bindings = _missing_bindings(state, layout)
    if bindings:
        missing["bindings"] = bindings
    if missing:
        ctl("import_definitions", stdin=json.dumps(missing))
        _wait_for_objects(layout, ctl, wait)
        names = [
            o.get("name") or f"binding {o['source']} -> {o['destination']}"
            for v in missing.values()
            for o in v
        ]
        report.change("declared " + ", ".join(str(n) for n in names))
    if layout.shards > 1 and new_queues and len(nodes) > 1:
        # definitions import puts every new queue's leader on this node: spread them
        (queues or Rabbitmqctl("rabbitmq-queues"))(
            "rebalance", "quorum", "--vhost-pattern", exactly(vhost),
            "--queue-pattern", "^" + rx(layout.queue) + r"\.[0-9]+$",
        )  # fmt: skip
        report.change(f"leaders of the shard queues spread over {len(nodes)} nodes")
    return report


def _wait_for_objects(layout: Layout, ctl: Rabbitmqctl, wait: float) -> None:
    """import_definitions returns before it is done: poll until everything is there."""
    deadline = time.monotonic() + wait
    while True:
        state = State.read(ctl.export(), layout.vhost)
        if (
            all(x["name"] in state.exchanges for x in layout.exchange_defs())
            and all(q["name"] in state.queues for q in layout.queue_defs())
            and not _missing_bindings(state, layout)
        ):
            _check_existing(state, layout)
            return
        if time.monotonic() > deadline:
            raise ProvisionError(
                f"the exchange and queues did not appear within {wait:g} s after "
                "rabbitmqctl import_definitions; see the broker's log"
            )
        time.sleep(0.5)


# --- secrets and snippets ----------------------------------------------------------------


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new or existing file with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


class Passwords:
    """Existing ``<user>.password`` files are reused; new passwords are written there."""

    def __init__(self, directory: Path | None):
        self.directory = directory
        self.created: dict[str, str] = {}

    def path(self, user: str) -> Path | None:
        return self.directory / f"{user}.password" if self.directory is not None else None

    def __call__(self, user: str) -> str:
        path = self.path(user)
        if path is not None and path.exists():
            text = path.read_text(encoding="utf-8").rstrip("\r\n")
            if text:
                return text
        password = new_password()
        if path is not None:
            write_private(path, password + "\n")
        self.created[user] = password
        return password


def daemon_url(base: str, user: str, vhost: str) -> str:
    parts = urlsplit(base)
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{quote(user, safe='')}@{host}{port}/{quote(vhost, safe='')}"


def daemon_urls(bases: Sequence[str], user: str, vhost: str) -> str:
    """``[broker] url`` for ``user``: one URL per node, separated by spaces."""
    return " ".join(daemon_url(base, user, vhost) for base in bases)


def meterd_snippet(layout: Layout, meter: str, base_url: str | Sequence[str]) -> str:
    bases = [base_url] if isinstance(base_url, str) else list(base_url)
    exchange = "" if layout.exchange == DEFAULT_EXCHANGE else f"exchange = {layout.exchange}\n"
    return (
        f"# {meter}: a drop-in of that meter's config, e.g. /etc/meterd/meterd.ini.d/"
        f"60-broker.ini\n"
        f"# (meterd.service) or /etc/meterd/{meter}.ini.d/60-broker.ini (meterd@{meter})\n"
        f"[broker]\n"
        f"url = {daemon_urls(bases, meter, layout.vhost)}\n"
        f"{exchange}"
        f"password_file = /etc/meterd/{meter}.password\n"
        f"# install the password readable by meterd only:\n"
        f"#   install -m 0600 -o meterd -g meterd {meter}.password /etc/meterd/\n"
    )


def pvsimd_snippet(layout: Layout, base_url: str | Sequence[str]) -> str:
    bases = [base_url] if isinstance(base_url, str) else list(base_url)
    names = ""
    if layout.exchange != DEFAULT_EXCHANGE:
        names += f"exchange = {layout.exchange}\n"
    if layout.queue != topology.DEFAULT_QUEUE:
        names += f"queue = {layout.queue}\n"
    if layout.dead_letter_queue != topology.DEFAULT_DEAD_LETTER_QUEUE:
        names += f"dead_letter_queue = {layout.dead_letter_queue}\n"
    if layout.delivery_limit != topology.DEFAULT_DELIVERY_LIMIT:
        names += f"delivery_limit = {layout.delivery_limit}\n"
    if layout.replicas is not None:
        names += f"replicas = {layout.replicas}\n"
    if layout.shards > 1:
        names += (
            f"shards = {layout.shards}\n"
            f"# one pvsimd per shard, 0 ... {layout.shards - 1} (a second one per shard is its\n"
            f"# standby), all writing one shared [output] directory: see docs/scaling.md\n"
            f"shard = 0\n"
        )
    user = layout.pvsimd_user
    return (
        f"# pvsimd: /etc/pvsimd/pvsimd.ini.d/60-broker.ini\n"
        f"[broker]\n"
        f"url = {daemon_urls(bases, user, layout.vhost)}\n"
        f"{names}"
        f"password_file = /etc/pvsimd/broker-password\n"
        f"# install -m 0600 -o pvsimd {user}.password /etc/pvsimd/broker-password\n"
        f"# (or a systemd credential: see LoadCredential= in pvsimd.service)\n"
        f"[security]\n"
        f"verify_sender = yes\n"
    )


# --- command line ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Provision RabbitMQ for pvsim: virtual host, exchange, pvsimd's queues, "
        "one least-privilege user per meter and one for pvsimd. Idempotent.",
    )
    p.add_argument("meters", nargs="+", metavar="METER_ID", help="meter ids (= user names)")
    p.add_argument("--vhost", default="pvsim", help="virtual host (default: %(default)s)")
    p.add_argument("--exchange", default=Layout.exchange, help="default: %(default)s")
    p.add_argument("--queue", default=Layout.queue, help="pvsimd's queue (default: %(default)s)")
    p.add_argument("--dead-letter-queue", default=Layout.dead_letter_queue)
    p.add_argument("--delivery-limit", type=int, default=Layout.delivery_limit)
    p.add_argument("--pvsimd-user", default="pvsimd", help="default: %(default)s")
    p.add_argument(
        "--dead-letter-max-length",
        type=int,
        default=Layout.dead_letter_max_length,
        help="policy: dead letters kept at most, the oldest dropped (0: no policy; "
        "default: %(default)s)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=Layout.max_connections,
        help="connections per meter user at most (0: no limit; default: %(default)s)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        help="replicas of each queue on a cluster (x-quorum-initial-group-size; default: "
        "not declared, RabbitMQ's three or every node of a smaller cluster); pvsimd's "
        "[broker] replicas must match",
    )
    p.add_argument(
        "--shards",
        type=int,
        default=1,
        help="split the readings over this many shard queues behind a consistent-hash "
        "exchange (enables rabbitmq_consistent_hash_exchange; default: %(default)s, one queue)",
    )
    p.add_argument(
        "--secrets-dir",
        type=Path,
        help="write new passwords to DIR/<user>.password (mode 0600) and reuse existing "
        "ones; without it new passwords are printed once",
    )
    p.add_argument(
        "--url",
        action="append",
        help="the broker as the daemons reach it, for the printed config; once per node "
        "of a cluster (default: amqps://<this host's name>:5671)",
    )
    p.add_argument(
        "--definitions",
        type=Path,
        metavar="FILE",
        help="write RabbitMQ definitions JSON to FILE (mode 0600) instead of applying them",
    )
    p.add_argument("--rabbitmqctl", default="rabbitmqctl", help="default: %(default)s")
    p.add_argument(
        "--rabbitmq-plugins", default="rabbitmq-plugins", help="with --shards (%(default)s)"
    )
    p.add_argument(
        "--rabbitmq-queues", default="rabbitmq-queues", help="with --shards (%(default)s)"
    )
    p.add_argument("--node", help="the RabbitMQ node (rabbitmqctl -n)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: Sequence[str] | None = None, env: dict | None = None) -> int:
    args = _parser().parse_args(argv)
    args.url = [u for text in args.url or [] for u in text.split()] or [
        f"amqps://{socket.getfqdn()}:5671"
    ]
    try:
        layout = Layout(
            meters=tuple(dict.fromkeys(args.meters)),
            vhost=args.vhost,
            exchange=args.exchange,
            queue=args.queue,
            dead_letter_queue=args.dead_letter_queue,
            delivery_limit=args.delivery_limit,
            pvsimd_user=args.pvsimd_user,
            dead_letter_max_length=args.dead_letter_max_length,
            max_connections=args.max_connections,
            replicas=args.replicas,
            shards=args.shards,
        )
        for url in args.url:
            if urlsplit(url).scheme not in ("amqp", "amqps"):
                raise ProvisionError(f"--url must start with amqps:// or amqp://, got {url!r}")
        if args.secrets_dir is not None:
            args.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        passwords = Passwords(args.secrets_dir)
        if args.definitions is not None:
            defs = layout.definitions({user: passwords(user) for user in layout.users})
            write_private(args.definitions, json.dumps(defs, indent=2) + "\n")
            print(f"{PROG}: definitions for {len(layout.users)} users written to "
                  f"{args.definitions} (import: rabbitmqctl import_definitions FILE)")  # fmt: skip
            report = Report(new_passwords=dict(passwords.created))
        else:
            ctl = Rabbitmqctl(args.rabbitmqctl, args.node, env)
            report = apply(
                layout,
                ctl,
                passwords,
                plugins=Rabbitmqctl(args.rabbitmq_plugins, args.node, env),
                queues=Rabbitmqctl(args.rabbitmq_queues, args.node, env),
            )
            for line in report.changes:
                print(f"{PROG}: {line}")
            if not report.changes:
                print(f"{PROG}: everything already in place, nothing changed")
        for note in report.notes:
            print(f"{PROG}: note: {note}", file=sys.stderr)
    except ProvisionError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EX_FAILED
    except OSError as exc:
        print(f"{PROG}: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EX_FAILED

    _print_result(layout, args, passwords, report)
    return EX_OK


def _print_result(layout: Layout, args: argparse.Namespace, pw: Passwords, report: Report) -> None:
    created = {u: p for u, p in report.new_passwords.items() if u in pw.created}
    if created and args.secrets_dir is None:
        print("\n# New passwords, shown only now (nothing stores them): put each in its")
        print("# password file on the host that needs it.")
        for user, password in created.items():
            print(f"#   {user}: {password}")
    elif created:
        print(f"\n# New passwords are in {args.secrets_dir}/<user>.password (mode 0600).")
    print("\n# Configuration of the daemons (password handling: docs/security.md)\n")
    for meter in layout.meters:
        print(meterd_snippet(layout, meter, args.url))
    print(pvsimd_snippet(layout, args.url))


if __name__ == "__main__":
    sys.exit(main())
