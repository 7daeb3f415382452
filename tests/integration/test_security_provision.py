"""pvsim-broker-setup on a RabbitMQ node of our own: least privilege, really enforced by the
broker, idempotent, and the daemons work with exactly those rights."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pika
import pika.exceptions
import pytest

from tests.support.broker_node import BrokerNode, _tool
from tests.support.daemons import REPO, Site, drain_queue, publish_raw
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

VHOST = "pvsim"
MUST_NOT = (pika.exceptions.ChannelClosedByBroker,)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    base = tmp_path_factory.mktemp("provision") / "node"
    n = BrokerNode(base)
    try:
        n.start()
        yield n
    finally:
        n.kill()
        shutil.rmtree(base, ignore_errors=True)


def setup_cmd(node: BrokerNode, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(node.env, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "pvsim.provision", "--rabbitmqctl", _tool("rabbitmqctl"),
         "--node", node.nodename, *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def provisioned(node, tmp_path_factory):
    secrets_dir = tmp_path_factory.mktemp("secrets")
    proc = setup_cmd(
        node, "--secrets-dir", str(secrets_dir), "--url", f"amqp://127.0.0.1:{node.amqp_port}",
        "house-a", "house-b",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "user house-a: created" in proc.stdout
    # the passwords are in files of mode 0600, not in what was printed
    for user in ("house-a", "house-b", "pvsimd"):
        f = secrets_dir / f"{user}.password"
        assert oct(os.stat(f).st_mode & 0o777) == "0o600"
        assert f.read_text().strip() not in proc.stdout + proc.stderr
    return secrets_dir


def password(secrets_dir, user: str) -> str:
    return (secrets_dir / f"{user}.password").read_text().strip()


def connect(node: BrokerNode, user: str, pw: str, vhost: str = VHOST) -> pika.BlockingConnection:
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            "127.0.0.1", node.amqp_port, vhost, pika.PlainCredentials(user, pw),
            connection_attempts=1, socket_timeout=10,
        )
    )  # fmt: skip


def refused(conn: pika.BlockingConnection, action, code: int = 403) -> str:
    ch = conn.channel()
    ch.confirm_delivery()
    with pytest.raises(MUST_NOT) as info:
        action(ch)
        ch.basic_qos(prefetch_count=1)  # a round trip: an async refusal shows up here
    assert info.value.reply_code == code, info.value
    return info.value.reply_text


BODY = b'{"v": 1, "meter_id": "house-a", "ts": "2026-11-24T10:00:00Z", "power_w": 1}'


def test_a_house_cannot_publish_for_another(node, provisioned):
    conn = connect(node, "house-b", password(provisioned, "house-b"))
    try:
        text = refused(conn, lambda ch: ch.basic_publish("meter.readings", "reading.house-a", BODY))
        assert "ACCESS_REFUSED" in text and "reading.house-a" in text
        # pretending to be another user is refused too
        text = refused(
            conn,
            lambda ch: ch.basic_publish(
                "meter.readings", "reading.house-b", BODY, pika.BasicProperties(user_id="house-a")
            ),
            code=406,
        )
        assert "PRECONDITION_FAILED" in text
        # straight into pvsimd's queue through the default exchange: no
        refused(conn, lambda ch: ch.basic_publish("", "pvsimd.readings", BODY))
        # its own routing key is fine
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(
            "meter.readings",
            "reading.house-b",
            BODY.replace(b"house-a", b"house-b"),
            pika.BasicProperties(user_id="house-b"),
        )
    finally:
        conn.close()


def test_a_house_cannot_read_or_reconfigure_anything(node, provisioned):
    conn = connect(node, "house-b", password(provisioned, "house-b"))
    try:
        refused(conn, lambda ch: ch.basic_get("pvsimd.readings"))
        refused(conn, lambda ch: ch.basic_consume("pvsimd.readings", lambda *a: None))
        refused(conn, lambda ch: ch.basic_get("pvsimd.readings.invalid"))
        refused(conn, lambda ch: ch.queue_declare("house-b.spy", exclusive=True))
        refused(conn, lambda ch: ch.queue_declare("pvsimd.readings", durable=True))
        refused(conn, lambda ch: ch.exchange_declare("meter.readings", "topic", durable=True))
        refused(conn, lambda ch: ch.exchange_declare("house-b.x", "fanout"))
        refused(conn, lambda ch: ch.queue_bind("pvsimd.readings", "meter.readings", "#"))
        refused(conn, lambda ch: ch.queue_delete("pvsimd.readings"))
        refused(conn, lambda ch: ch.exchange_delete("meter.readings"))
        refused(conn, lambda ch: ch.queue_purge("pvsimd.readings"))
    finally:
        conn.close()
    # and nothing in another virtual host
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        connect(node, "house-b", password(provisioned, "house-b"), vhost="/")


def test_a_house_has_a_connection_limit(node, provisioned):
    conns = []
    try:
        for _ in range(5):
            conns.append(connect(node, "house-a", password(provisioned, "house-a")))
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            conns.append(connect(node, "house-a", password(provisioned, "house-a")))
    finally:
        for c in conns:
            c.close()


def test_running_setup_again_changes_nothing(node, provisioned):
    before = json.loads(node.ctl("export_definitions", "-", "-q").stdout)
    proc = setup_cmd(node, "--secrets-dir", str(provisioned), "house-a", "house-b")
    assert proc.returncode == 0, proc.stderr
    assert "nothing changed" in proc.stdout
    after = json.loads(node.ctl("export_definitions", "-", "-q").stdout)
    assert after == before


def test_the_daemons_work_with_exactly_these_rights(node, provisioned, tmp_path):
    url = f"amqp://{{user}}@127.0.0.1:{node.amqp_port}/{VHOST}"
    site = Site(
        root=tmp_path,
        broker_url=node.url,
        exchange="meter.readings",
        queue="pvsimd.readings",
    )
    try:
        pvsimd = site.start_pvsimd(
            broker={
                "url": url.format(user="pvsimd"),
                "password_file": provisioned / "pvsimd.password",
            },
            security={"verify_sender": "yes"},
        )
        wait_until(lambda: "ready" in pvsimd.log(), timeout=30, message=pvsimd.log())
        for house in ("house-a", "house-b"):
            site.start_meterd(
                house,
                broker={
                    "url": url.format(user=house),
                    "password_file": provisioned / f"{house}.password",
                },
            )
        for house in ("house-a", "house-b"):
            wait_until(lambda h=house: len(site.rows(h)) >= 5, timeout=60, message=pvsimd.log())
        # a reading without user_id, even on the right routing key, is dead-lettered as forged
        publish_raw(
            f"amqp://house-b:{password(provisioned, 'house-b')}@127.0.0.1:{node.amqp_port}/pvsim",
            "meter.readings",
            "reading.house-b",
            BODY.replace(b"house-a", b"house-b").replace(b"10:00", b"09:00"),
        )
        wait_until(lambda: "forged" in pvsimd.log(), timeout=20, message=pvsimd.log())
        node.ctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")  # to look
        dead = wait_until(
            lambda: drain_queue(node.url.replace("%2F", VHOST), "pvsimd.readings.invalid"),
            timeout=20,
        )
        (props, _body), *_ = dead
        assert props.headers["x-pvsim-reason"].startswith("forged: no user_id")
        for proc in site.processes:
            assert proc.running()
            log = proc.log()
            assert "Traceback" not in log and "ACCESS_REFUSED" not in log, log
            assert proc.stop() == 0
    finally:
        for proc in site.processes:
            proc.kill()
        node.ctl("clear_permissions", "-p", VHOST, "guest")


def test_definitions_file_imports_and_its_hashes_log_in(node, tmp_path):
    defs, secrets_dir = tmp_path / "defs.json", tmp_path / "s"
    proc = setup_cmd(
        node, "--definitions", str(defs), "--secrets-dir", str(secrets_dir),
        "--vhost", "pvsim-defs", "--pvsimd-user", "pvsimd-defs", "house-x",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    node.ctl("import_definitions", str(defs))
    pw = password(secrets_dir, "house-x")
    conn = wait_until(
        lambda: connect(node, "house-x", pw, vhost="pvsim-defs"),
        timeout=30,
        message="house-x cannot log in with the password whose hash is in the definitions",
    )
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(
            "meter.readings", "reading.house-x", BODY, pika.BasicProperties(user_id="house-x")
        )
        refused(conn, lambda ch: ch.basic_publish("meter.readings", "reading.house-a", BODY))
    finally:
        conn.close()
    node.ctl("authenticate_user", "pvsimd-defs", password(secrets_dir, "pvsimd-defs"))
