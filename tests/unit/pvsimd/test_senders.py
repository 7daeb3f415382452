"""Verified senders: [security] sender_map and the forged-reading verdict."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from pvsim import config as c
from pvsimd.senders import SenderCheck, parse_sender_map, sender_check
from pvsimd.settings import SCHEMA


def test_by_default_a_user_sends_for_the_meter_of_its_name():
    check = SenderCheck()
    assert check.forged("house-a", "house-a") is None
    reason = check.forged("house-b", "house-a")
    assert reason.startswith("forged") and "'house-b'" in reason and "'house-a'" in reason
    assert check.forged(None, "house-a").startswith("forged: no user_id")
    assert check.forged("", "house-a").startswith("forged")


def test_a_mapped_user_sends_for_exactly_its_meters():
    check = SenderCheck(parse_sender_map("guest:house-a, guest:house-b  box7:house-c"))
    assert check.allowed("guest", "house-a") and check.allowed("guest", "house-b")
    assert not check.allowed("guest", "house-c") and not check.allowed("guest", "guest")
    assert check.allowed("box7", "house-c") and not check.allowed("box7", "box7")
    assert check.allowed("house-d", "house-d")  # unmapped users: their own name


def test_an_empty_map():
    assert parse_sender_map("") == {}
    assert parse_sender_map(" , ") == {}


@pytest.mark.parametrize("text", ["guest", "guest:", ":house-a", "guest:house a!", "a:b:c"])
def test_bad_pairs_are_refused(text):
    with pytest.raises(ValueError, match="user:meter_id pairs"):
        parse_sender_map(text)


def test_a_map_file(tmp_path):
    f = tmp_path / "senders"
    f.write_text("# who sends for whom\nguest:house-a guest:house-b\n\nbox7:house-c  # shed\n")
    assert parse_sender_map(str(f)) == {
        "guest": frozenset({"house-a", "house-b"}),
        "box7": frozenset({"house-c"}),
    }
    with pytest.raises(ValueError, match="cannot read"):
        parse_sender_map(str(tmp_path / "missing"))
    f.write_text("guest house-a\n")
    with pytest.raises(ValueError, match=f"in {f}"):
        parse_sender_map(str(f))


def test_the_schema(tmp_path):
    ini = tmp_path / "pvsimd.ini"
    ini.write_text("[site]\nlatitude = 1\nlongitude = 2\n")
    config = c.load(ini, SCHEMA)
    assert asdict(config.security) == {
        "verify_sender": True,
        "sender_map": {},
        "trust_local_guest": True,
        "future_tolerance": 300.0,
    }
    ini.write_text(ini.read_text() + "[security]\nsender_map = guest:house-a,\n")
    assert c.load(ini, SCHEMA).security.sender_map == {"guest": frozenset({"house-a"})}
    ini.write_text(ini.read_text().replace("guest:house-a,", "nope"))
    with pytest.raises(c.ConfigError, match=r"\[security\] sender_map: must be user:meter_id"):
        c.load(ini, SCHEMA)


# --- the local guest -------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[3]


def _check(tmp_path, url: str, security: str = ""):
    ini = tmp_path / "pvsimd.ini"
    ini.write_text(
        f"[site]\nlatitude = 1\nlongitude = 2\n[broker]\nurl = {url}\nallow_plaintext = yes\n"
        f"[security]\n{security}\n"
    )
    return sender_check(c.load(ini, SCHEMA))


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:guest@localhost:5672/%2F",
        "amqp://pvsimd@127.0.0.1/pvsim",
        "amqp://guest:guest@[::1]:5672/%2F",
        "amqps://guest:guest@localhost:5671/%2F",
    ],
)
def test_with_a_broker_on_this_machine_guest_sends_for_any_meter(tmp_path, url, caplog):
    caplog.set_level("INFO")
    check = _check(tmp_path, url)
    assert check.allowed("guest", "house-a") and check.allowed("guest", "house-z")
    assert not check.allowed("house-b", "house-a")  # the others as before
    assert check.allowed("house-b", "house-b")
    assert not check.allowed(None, "house-a")
    assert "trust_local_guest = no turns this off" in caplog.text


@pytest.mark.parametrize(
    "url", ["amqps://guest:guest@broker.example.org/%2F", "amqp://guest:guest@192.0.2.1/%2F"]
)
def test_with_a_broker_elsewhere_guest_is_just_a_user(tmp_path, url):
    check = _check(tmp_path, url)
    reason = check.forged("guest", "house-a")
    assert reason.startswith("forged: broker user 'guest' may not send readings of meter")


def test_trust_local_guest_off_and_a_sender_map_entry_for_guest(tmp_path):
    local = "amqp://guest:guest@localhost:5672/%2F"
    off = _check(tmp_path, local, "trust_local_guest = no")
    assert not off.allowed("guest", "house-a")
    mapped = _check(tmp_path, local, "sender_map = guest:house-a")  # the map says exactly
    assert mapped.allowed("guest", "house-a") and not mapped.allowed("guest", "house-b")
    assert _check(tmp_path, local, "verify_sender = no") is None


def test_the_shipped_configs_work_together_on_one_host():
    """meterd.ini sends as guest to localhost; pvsimd.ini consumes from localhost and
    verifies senders: the meter's readings are accepted, for any meter id."""
    from meterd.settings import SCHEMA as METERD

    meterd = c.load(REPO / "etc/meterd/meterd.ini", METERD)
    user = meterd.broker.username
    pvsimd = c.load(REPO / "etc/pvsimd/pvsimd.ini", SCHEMA)
    assert pvsimd.security.verify_sender is True
    check = sender_check(pvsimd)
    assert check.forged(user, meterd.meter.id) is None
    assert check.forged(user, "house-b") is None  # meterd@house-b, same shipped broker URL
