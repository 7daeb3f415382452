"""Secrets stay secret; plaintext only to loopback; verified senders (on the local broker)."""

from __future__ import annotations

import json
import os

import pika
import pytest

from pvsim.config import EX_CONFIG
from tests.support.daemons import drain_queue, publish_raw
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

WRONG = "Wr0ng-Pa55word-xyzzy"


def private(path, text: str, mode: int = 0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_a_wrong_password_never_shows_up_in_the_log(site):
    config = site.meterd_config(
        "house-a",
        broker={"url": f"amqp://guest:{WRONG}@127.0.0.1:5672/%2F"},
        logging={"level": "debug"},
    )
    os.chmod(config, 0o600)
    meterd = site.start("meterd", config)
    wait_until(
        lambda: meterd.log().count("authentication refused by the broker") >= 2,
        timeout=30,
        message="no retried authentication failure",
    )
    assert meterd.stop() == 0
    log = meterd.log()
    assert WRONG not in log and "Traceback" not in log, log
    assert "guest:***@127.0.0.1" in log


def test_a_world_readable_config_with_a_password_is_refused(site):
    config = site.meterd_config("house-a", broker={"url": f"amqp://house-a:{WRONG}@localhost/"})
    os.chmod(config, 0o644)
    meterd = site.start("meterd", config)
    assert meterd.proc.wait(timeout=20) == EX_CONFIG
    (line,) = meterd.log().strip().splitlines()
    assert f"{config}: [broker] url: holds a password" in line and "0644" in line
    assert WRONG not in line


def test_a_world_readable_password_file_is_refused(site, tmp_path):
    secret = private(tmp_path / "pw", "guest\n", 0o644)
    meterd = site.start_meterd(
        "house-a", broker={"url": "amqp://guest@127.0.0.1:5672/%2F", "password_file": secret}
    )
    assert meterd.proc.wait(timeout=20) == EX_CONFIG
    (line,) = meterd.log().strip().splitlines()
    assert "[broker] password_file" in line and "0644" in line


def test_the_password_from_a_file_or_a_systemd_credential(site, tmp_path, monkeypatch):
    secret = private(tmp_path / "pw", "guest\n")
    pvsimd = site.start_pvsimd(
        broker={"url": "amqp://guest@127.0.0.1:5672/%2F", "password_file": secret}
    )
    wait_until(lambda: "ready" in pvsimd.log(), timeout=30, message=pvsimd.log())
    creds = tmp_path / "credentials"
    creds.mkdir()
    private(creds / "broker-password", "guest\n", 0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    site.start_meterd("house-a", broker={"url": "amqp://guest@127.0.0.1:5672/%2F"})
    wait_until(lambda: len(site.rows("house-a")) >= 3, timeout=30, message=pvsimd.log())


def test_plaintext_to_another_host_needs_allow_plaintext(site):
    url = "amqp://guest:guest@192.0.2.1:5672/%2F"  # TEST-NET-1: nobody answers
    refused = site.start_meterd("house-a", broker={"url": url})
    assert refused.proc.wait(timeout=20) == EX_CONFIG
    assert "allow_plaintext" in refused.log()
    allowed = site.start(
        "meterd",
        site.meterd_config(
            "house-b", broker={"url": url, "allow_plaintext": "yes", "connect_timeout": 0.5}
        ),
    )
    wait_until(lambda: "unencrypted to 192.0.2.1" in allowed.log(), timeout=20)
    line = next(ln for ln in allowed.log().splitlines() if "unencrypted" in ln)
    assert "WARNING" in line
    assert allowed.stop() == 0


def _reading(meter: str, minute: int) -> bytes:
    ts = f"2026-11-24T10:{minute:02d}:00Z"
    return json.dumps({"v": 1, "meter_id": meter, "ts": ts, "power_w": 100}).encode()


def test_verify_sender_lets_only_the_mapped_user_speak_for_a_meter(site):
    pvsimd = site.start_pvsimd(security={"verify_sender": "yes", "sender_map": "guest:house-a"})
    wait_until(lambda: "ready" in pvsimd.log(), timeout=30)
    as_guest = pika.BasicProperties(user_id="guest")
    publish_raw(site.broker_url, site.exchange, "reading.house-a", _reading("house-a", 1), as_guest)
    publish_raw(site.broker_url, site.exchange, "reading.house-b", _reading("house-b", 2), as_guest)
    publish_raw(site.broker_url, site.exchange, "reading.house-a", _reading("house-a", 3))
    # meterd sets user_id to its broker user (guest here) itself
    site.start_meterd("house-a")
    wait_until(lambda: len(site.rows("house-a")) >= 4, timeout=30, message=pvsimd.log())
    assert not site.rows("house-b")
    dead: list = []
    wait_until(
        lambda: dead.extend(drain_queue(site.broker_url, site.dead_letter_queue)) or len(dead) >= 2,
        timeout=20,
    )
    reasons = sorted(props.headers["x-pvsim-reason"] for props, _ in dead)
    assert reasons[0].startswith("forged: broker user 'guest' may not send readings of meter")
    assert reasons[1].startswith("forged: no user_id")
    for props, _ in dead:
        assert props.user_id is None  # pvsimd may not republish as another user
    assert {props.headers.get("x-pvsim-user-id") for props, _ in dead} == {"guest", None}
    assert "2026-11-24T11:03:00+01:00" not in [r["timestamp"] for r in site.rows("house-a")]
    assert pvsimd.running() and "Traceback" not in pvsimd.log()
