"""pvsim-broker-setup without a broker: hashes, permission regexes, definitions, and the
commands it would run against a (fake) rabbitmqctl."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat

import pytest

from pvsim import provision as p
from pvsim.topology import Topology


def test_password_hash_matches_rabbitmqs_documented_example():
    # https://www.rabbitmq.com/passwords.html: salt 908D C60A, password test12
    salt = bytes.fromhex("908DC60A")
    assert p.password_hash("test12", salt) == "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"


def test_password_hash_uses_a_fresh_salt():
    a, b = p.password_hash("same"), p.password_hash("same")
    assert a != b
    raw = base64.b64decode(a)
    assert len(raw) == 4 + 32 and raw[4:] == hashlib.sha256(raw[:4] + b"same").digest()


def test_new_passwords_are_long_and_url_safe():
    pw = p.new_password()
    assert len(pw) >= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", pw)


LAYOUT = p.Layout(meters=("house-a", "house-b"))


@pytest.mark.parametrize(
    ("user", "configure", "write", "read"),
    [
        ("house-a", "^$", r"^meter\.readings$", "^$"),
        (
            "pvsimd",
            r"^(meter\.readings|pvsimd\.readings|pvsimd\.readings\.invalid)$",
            r"^(amq\.default|pvsimd\.readings)$",
            r"^(meter\.readings|pvsimd\.readings)$",
        ),
    ],
)
def test_permissions(user, configure, write, read):
    assert LAYOUT.permission(user) == p.Permission(configure, write, read)


def test_permission_regexes_match_exactly_the_names():
    pv = LAYOUT.permission("pvsimd")
    for name in ("meter.readings", "pvsimd.readings", "pvsimd.readings.invalid"):
        assert re.search(pv.configure, name)
    for name in ("meterXreadings", "pvsimd.readings.invalid.x", "other", ""):
        assert not re.search(pv.configure, name)
    topic = LAYOUT.topic_permission("house-a")
    assert topic.write == r"^reading\.house-a$" and topic.read == "^$"
    assert re.search(topic.write, "reading.house-a")
    for key in ("reading.house-b", "reading.house-a.x", "readingXhouse-a", "reading.*"):
        assert not re.search(topic.write, key)
    assert LAYOUT.topic_permission("pvsimd") is None


def test_the_queues_are_declared_as_pvsimd_declares_them():
    queues = {q["name"]: q for q in LAYOUT.queue_defs()}
    assert queues["pvsimd.readings"]["arguments"] == Topology().readings.arguments
    assert queues["pvsimd.readings.invalid"]["arguments"] == {"x-queue-type": "quorum"}
    assert all(q["durable"] and not q["auto_delete"] for q in queues.values())


def test_definitions():
    defs = LAYOUT.definitions({"house-a": "pa", "house-b": "pb", "pvsimd": "pp"})
    assert defs["vhosts"] == [{"name": "pvsim"}]
    users = {u["name"]: u for u in defs["users"]}
    assert set(users) == {"house-a", "house-b", "pvsimd"}
    for name, pw in (("house-a", "pa"), ("pvsimd", "pp")):
        raw = base64.b64decode(users[name]["password_hash"])
        assert raw[4:] == hashlib.sha256(raw[:4] + pw.encode()).digest()
        assert users[name]["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert users[name]["tags"] == []
    assert users["house-a"]["limits"] == {"max-connections": 5, "max-channels": 20}
    assert users["pvsimd"]["limits"] == {}
    assert {t["user"]: t["write"] for t in defs["topic_permissions"]} == {
        "house-a": r"^reading\.house-a$",
        "house-b": r"^reading\.house-b$",
    }
    assert defs["exchanges"][0] | {} == LAYOUT.exchange_def()
    assert defs["bindings"][0]["routing_key"] == "reading.*"
    assert defs["policies"][0]["definition"] == {"max-length": 100000}
    json.dumps(defs)  # serialisable


@pytest.mark.parametrize(
    "kwargs",
    [
        {"meters": ("house a",)},
        {"meters": ("pvsimd",)},
        {"meters": ("h",), "queue": "q", "dead_letter_queue": "q"},
        {"meters": ("h",), "exchange": "bad exchange"},
    ],
)
def test_bad_layouts(kwargs):
    with pytest.raises(p.ProvisionError):
        p.Layout(**kwargs)


# --- apply, against a fake rabbitmqctl that keeps definitions ----------------------------


class FakeCtl:
    def __init__(self, nodes=("rabbit@one",)):
        self.nodes = list(nodes)
        self.defs = {
            "vhosts": [{"name": "/"}],
            "users": [{"name": "guest", "tags": ["administrator"], "limits": {}}],
            "permissions": [
                {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
            ],
        }
        self.calls: list[tuple[str, ...]] = []
        self.stdin: list[str | None] = []

    def export(self):
        return json.loads(json.dumps(self.defs))

    running_nodes = p.Rabbitmqctl.running_nodes  # through cluster_status below

    def _put(self, key, item, same):
        items = self.defs.setdefault(key, [])
        items[:] = [i for i in items if not same(i)] + [item]

    def __call__(self, *args, stdin=None, timeout=0):
        self.calls.append(args)
        self.stdin.append(stdin)
        cmd, rest = args[0], list(args[1:])
        vhost = None
        if "-p" in rest:
            i = rest.index("-p")
            vhost = rest[i + 1]
            del rest[i : i + 2]
        if cmd == "add_vhost":
            self.defs["vhosts"].append({"name": rest[0]})
        elif cmd == "add_user":
            self.defs["users"].append({"name": rest[0], "tags": [], "limits": {}})
        elif cmd == "set_user_tags":
            next(u for u in self.defs["users"] if u["name"] == rest[0])["tags"] = rest[1:]
        elif cmd == "set_permissions":
            user, conf, write, read = rest
            item = {"user": user, "vhost": vhost, "configure": conf, "write": write, "read": read}
            self._put("permissions", item, lambda i: (i["user"], i["vhost"]) == (user, vhost))
        elif cmd == "set_topic_permissions":
            user, exchange, write, read = rest
            item = {"user": user, "vhost": vhost, "exchange": exchange}
            item |= {"write": write, "read": read}
            self._put(
                "topic_permissions", item, lambda i: (i["user"], i["exchange"]) == (user, exchange)
            )
        elif cmd == "set_user_limits":
            next(u for u in self.defs["users"] if u["name"] == rest[0])["limits"] = json.loads(
                rest[1]
            )
        elif cmd == "set_policy":
            opts = dict(zip(rest[0:4:2], rest[1:4:2], strict=True))
            name, pattern, definition = rest[4:]
            item = {"vhost": vhost, "name": name, "pattern": pattern}
            item |= {"apply-to": opts["--apply-to"], "priority": int(opts["--priority"])}
            item["definition"] = json.loads(definition)
            self._put("policies", item, lambda i: i["name"] == name)
        elif cmd == "import_definitions":
            for key, items in json.loads(stdin).items():
                self.defs.setdefault(key, []).extend(items)
        elif cmd == "cluster_status":
            return json.dumps({"running_nodes": self.nodes})
        else:
            raise AssertionError(f"unexpected rabbitmqctl {args}")
        return ""


def passwords():
    return p.Passwords(None)


def test_apply_creates_everything_once():
    ctl = FakeCtl()
    pw = passwords()
    report = p.apply(LAYOUT, ctl, pw)
    commands = [c[0] for c in ctl.calls]
    assert commands.count("add_user") == 3 and commands.count("add_vhost") == 1
    assert set(report.new_passwords) == {"house-a", "house-b", "pvsimd"}
    # passwords go through stdin, never argv
    for call, stdin in zip(ctl.calls, ctl.stdin, strict=True):
        if call[0] == "add_user":
            assert stdin == report.new_passwords[call[1]] + "\n"
        assert not any(pw_ in call for pw_ in report.new_passwords.values())
    state = p.State.read(ctl.defs, "pvsim")
    assert state.permissions[("house-b", "pvsim")] == LAYOUT.permission("house-b")
    assert set(state.queues) == {"pvsimd.readings", "pvsimd.readings.invalid"}
    # the second run changes nothing and runs no command that writes
    ctl.calls.clear()
    again = p.apply(LAYOUT, ctl, passwords())
    assert again.changes == [] and ctl.calls == []


def test_apply_adds_a_house_and_keeps_the_others():
    ctl = FakeCtl()
    p.apply(LAYOUT, ctl, passwords())
    ctl.calls.clear()
    more = p.Layout(meters=("house-a", "house-b", "house-c"))
    report = p.apply(more, ctl, passwords())
    assert [c[:2] for c in ctl.calls if c[0] == "add_user"] == [("add_user", "house-c")]
    assert set(report.new_passwords) == {"house-c"}


def test_apply_repairs_wider_permissions_and_tags():
    ctl = FakeCtl()
    p.apply(LAYOUT, ctl, passwords())
    ctl("set_permissions", "-p", "pvsim", "house-a", ".*", ".*", ".*")
    ctl("set_user_tags", "house-a", "administrator")
    report = p.apply(LAYOUT, ctl, passwords())
    assert any("tags administrator removed" in line for line in report.changes)
    assert p.State.read(ctl.defs, "pvsim").permissions[("house-a", "pvsim")] == LAYOUT.permission(
        "house-a"
    )


def test_apply_refuses_a_queue_with_other_arguments():
    ctl = FakeCtl()
    ctl.defs["vhosts"].append({"name": "pvsim"})
    ctl.defs["queues"] = [
        {"name": "pvsimd.readings", "vhost": "pvsim", "durable": True, "arguments": {}}
    ]
    with pytest.raises(p.ProvisionError, match="PRECONDITION_FAILED"):
        p.apply(LAYOUT, ctl, passwords())
    assert ctl.calls == []  # checked before anything is changed


def test_apply_notes_permissions_in_other_vhosts():
    ctl = FakeCtl()
    ctl.defs["users"].append({"name": "house-a", "tags": [], "limits": {}})
    ctl.defs["permissions"].append(
        {"user": "house-a", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
    )
    report = p.apply(LAYOUT, ctl, passwords())
    assert any("clear_permissions -p '/' house-a" in n for n in report.notes)


def test_secrets_dir_files_are_private_and_reused(tmp_path):
    pw = p.Passwords(tmp_path)
    first = pw("house-a")
    f = tmp_path / "house-a.password"
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600 and f.read_text() == first + "\n"
    assert p.Passwords(tmp_path)("house-a") == first


def test_definitions_mode_writes_a_private_file_and_prints_config(tmp_path, capsys):
    out = tmp_path / "defs.json"
    rc = p.main(
        ["--definitions", str(out), "--secrets-dir", str(tmp_path / "s"),
         "--url", "amqps://broker.example:5671", "house-a", "house-b"]
    )  # fmt: skip
    assert rc == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    defs = json.loads(out.read_text())
    assert {u["name"] for u in defs["users"]} == {"house-a", "house-b", "pvsimd"}
    printed = capsys.readouterr().out
    assert "url = amqps://house-a@broker.example:5671/pvsim" in printed
    assert "password_file = /etc/meterd/house-a.password" in printed
    assert "url = amqps://pvsimd@broker.example:5671/pvsim" in printed
    for f in (tmp_path / "s").iterdir():
        assert f.read_text().strip() not in printed  # passwords stay in their files


def test_without_a_secrets_dir_new_passwords_are_printed_once(tmp_path, capsys):
    assert p.main(["--definitions", str(tmp_path / "d.json"), "house-a"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"#   house-a: [A-Za-z0-9_-]{32}", printed)


def test_errors_are_one_line(capsys):
    assert p.main(["--rabbitmqctl", "/nonexistent/rabbitmqctl", "house-a"]) == p.EX_FAILED
    err = capsys.readouterr().err.strip()
    assert err.startswith("pvsim-broker-setup: /nonexistent/rabbitmqctl not found")
    assert "\n" not in err


# --- a cluster: replicas, shards ------------------------------------------------------------


class FakeTool:
    """rabbitmq-plugins or rabbitmq-queues: the plugin enabled per node, calls recorded."""

    def __init__(self, enabled, node="rabbit@one", calls=None):
        self.enabled = enabled  # set of nodes with the plugin, shared by all instances
        self.node = node
        self.calls = [] if calls is None else calls

    def on(self, node):
        return FakeTool(self.enabled, node, self.calls)

    def __call__(self, *args, stdin=None, timeout=0):
        self.calls.append((self.node, *args))
        if args[0] == "is_enabled" and self.node not in self.enabled:
            raise p.ProvisionError(f"rabbitmq-plugins is_enabled failed: not on {self.node}")
        if args[0] == "enable":
            self.enabled.add(self.node)
        return ""


SHARDED = p.Layout(meters=("house-a",), shards=3, replicas=3)


def test_shards_are_provisioned_as_each_shards_pvsimd_declares_them():
    queues = {q["name"]: q["arguments"] for q in SHARDED.queue_defs()}
    assert set(queues) == {
        "pvsimd.readings.invalid", "pvsimd.readings.0", "pvsimd.readings.1", "pvsimd.readings.2",
    }  # fmt: skip
    for k in range(3):
        t = Topology(shards=3, shard=k, replicas=3)
        assert queues[t.consumed] == t.readings.arguments
        assert queues[t.consumed]["x-quorum-initial-group-size"] == 3
    assert [(x["name"], x["type"]) for x in SHARDED.exchange_defs()] == [
        ("meter.readings", "topic"), ("pvsimd.readings.shards", "x-consistent-hash"),
    ]  # fmt: skip
    bindings = [
        (b["source"], b["destination_type"], b["destination"], b["routing_key"])
        for b in SHARDED.binding_defs()
    ]
    assert bindings == [
        ("meter.readings", "exchange", "pvsimd.readings.shards", "reading.*"),
        *(("pvsimd.readings.shards", "queue", f"pvsimd.readings.{k}", "1") for k in range(3)),
    ]


def test_the_pvsimd_user_may_declare_every_shard_also_one_added_later():
    pv = SHARDED.permission("pvsimd")
    for name in ("meter.readings", "pvsimd.readings.shards", "pvsimd.readings.invalid",
                 "pvsimd.readings.0", "pvsimd.readings.17"):  # fmt: skip
        assert re.search(pv.configure, name), name
    for name in ("pvsimd.readings", "pvsimd.readings.x", "pvsimd.readings.1.2", "other"):
        assert not re.search(pv.configure, name), name
    assert re.search(pv.write, "pvsimd.readings.shards") and re.search(pv.write, "amq.default")
    assert not re.search(pv.write, "meter.readings")
    assert re.search(pv.read, "meter.readings") and re.search(pv.read, "pvsimd.readings.2")


def test_apply_enables_the_plugin_here_and_names_the_nodes_that_still_lack_it():
    ctl = FakeCtl(nodes=("rabbit@one", "rabbit@two"))
    plugins = FakeTool(enabled=set())
    with pytest.raises(p.ProvisionError) as err:
        p.apply(SHARDED, ctl, passwords(), plugins=plugins, queues=FakeTool(set()))
    assert "rabbit@two" in str(err.value) and "rabbit@one" not in str(err.value)
    assert "rabbitmq-plugins enable rabbitmq_consistent_hash_exchange" in str(err.value)
    assert ("rabbit@one", "enable", "rabbitmq_consistent_hash_exchange") in plugins.calls
    assert "queues" not in ctl.defs  # nothing declared before the plugin is everywhere


def test_apply_on_a_cluster_declares_the_shards_and_spreads_their_leaders():
    ctl = FakeCtl(nodes=("rabbit@one", "rabbit@two", "rabbit@three"))
    plugins = FakeTool(enabled={"rabbit@two", "rabbit@three"})
    queues = FakeTool(set())
    report = p.apply(SHARDED, ctl, passwords(), plugins=plugins, queues=queues)
    assert "plugin rabbitmq_consistent_hash_exchange: enabled on rabbit@one" in report.changes
    state = p.State.read(ctl.defs, "pvsim")
    assert set(state.queues) == {q["name"] for q in SHARDED.queue_defs()}
    assert state.exchanges["pvsimd.readings.shards"]["type"] == "x-consistent-hash"
    (rebalance,) = queues.calls
    assert rebalance[1:3] == ("rebalance", "quorum") and r"^pvsimd\.readings\.[0-9]+$" in rebalance
    # again: nothing to do, no rebalance
    queues.calls.clear()
    again = p.apply(SHARDED, ctl, passwords(), plugins=plugins, queues=queues)
    assert again.changes == [] and queues.calls == []


def test_apply_notes_more_replicas_than_nodes():
    report = p.apply(
        p.Layout(meters=("house-a",), replicas=3), FakeCtl(), passwords()
    )
    assert any("--replicas 3 but the cluster has 1 running node" in n for n in report.notes)


def test_a_cluster_s_urls_go_into_every_drop_in(tmp_path, capsys):
    rc = p.main(
        ["--definitions", str(tmp_path / "d.json"), "--shards", "2",
         "--url", "amqps://r1.example:5671", "--url", "amqps://r2.example:5671 amqps://r3.example",
         "house-a"]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert (
        "url = amqps://house-a@r1.example:5671/pvsim amqps://house-a@r2.example:5671/pvsim "
        "amqps://house-a@r3.example/pvsim"
    ) in printed
    assert "shards = 2\n" in printed and "shard = 0\n" in printed
    defs = json.loads((tmp_path / "d.json").read_text())
    assert {q["name"] for q in defs["queues"]} == {
        "pvsimd.readings.invalid", "pvsimd.readings.0", "pvsimd.readings.1",
    }  # fmt: skip
