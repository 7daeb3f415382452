"""The per-reading context: computed once per timestamp text, with the site's local day
and time and the PV power of that instant."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pvsim import wire
from pvsimd.moments import Moments

BERLIN = ZoneInfo("Europe/Berlin")


def test_a_moment_holds_what_the_row_and_the_file_need():
    asked = []
    moments = Moments(BERLIN, lambda ts: asked.append(ts) or 1234.5)
    m = moments.at("2026-11-24T23:30:00.250Z")
    assert m.ts == datetime(2026, 11, 24, 23, 30, 0, 250_000, tzinfo=UTC)
    assert m.epoch_us == wire.to_epoch_us(m.ts)
    assert (m.day, m.local, m.pv_w) == ("2026-11-25", "2026-11-25T00:30:00.250+01:00", 1234.5)
    assert asked == [m.ts]


def test_each_timestamp_text_is_computed_once():
    asked = []
    moments = Moments(BERLIN, lambda ts: asked.append(ts) or 0.0)
    for _ in range(3):
        assert moments.at("2026-11-24T10:00:00.000Z").pv_w == 0.0
    moments.at("2026-11-24T10:00:10.000Z").pv_w  # noqa: B018 - asked for: computed
    assert len(asked) == 2


def test_the_pv_power_is_computed_only_when_asked_for():
    asked = []
    moment = Moments(BERLIN, lambda ts: asked.append(ts) or 12.5).at("2026-11-24T10:00:00Z")
    assert asked == []  # a refused message never asks
    assert (moment.pv_w, moment.pv_w) == (12.5, 12.5)
    assert len(asked) == 1


def test_the_cache_is_bounded():
    moments = Moments(BERLIN, lambda ts: 0.0, size=4)
    for second in range(10):
        moments.at(f"2026-11-24T10:00:{second:02d}Z")
    assert len(moments._by_text) <= 4


def test_a_bad_timestamp_is_an_invalid_reading():
    with pytest.raises(wire.InvalidReading, match="RFC 3339"):
        Moments(BERLIN, lambda ts: 0.0).at("2026-11-24 10:00")
