"""Verified senders: [security] sender_map and the forged-reading verdict."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from pvsim import config as c
from pvsimd.senders import SenderCheck, parse_sender_map
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
    assert asdict(config.security) == {"verify_sender": True, "sender_map": {}}
    ini.write_text(ini.read_text() + "[security]\nsender_map = guest:house-a,\n")
    assert c.load(ini, SCHEMA).security.sender_map == {"guest": frozenset({"house-a"})}
    ini.write_text(ini.read_text().replace("guest:house-a,", "nope"))
    with pytest.raises(c.ConfigError, match=r"\[security\] sender_map: must be user:meter_id"):
        c.load(ini, SCHEMA)
