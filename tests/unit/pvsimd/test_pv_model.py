"""The PV model: a smooth day curve in mean solar time, zero at night, 3.3 kW peak."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pvsimd.pv_model import MAX_W, DayCurve

BERLIN_LONGITUDE = 13.405


def solar(curve: DayCurve, day: datetime, hour: float) -> datetime:
    """The UTC instant at which it is ``hour`` o'clock mean solar time at the curve's site."""
    midnight = day.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)
    return midnight + timedelta(hours=hour, seconds=-curve.longitude * 240.0)


def day_of_10s_values(curve: DayCurve, day: datetime) -> list[tuple[datetime, float]]:
    start = solar(curve, day, 0)
    out = []
    for k in range(8640):
        ts = start + timedelta(seconds=10 * k)
        out.append((ts, curve.power_w(ts)))
    return out


@pytest.fixture
def curve():
    return DayCurve(longitude=BERLIN_LONGITUDE)


@pytest.mark.parametrize("hour", [0.0, 2.0, 5.5, 5.99, 21.0, 21.5, 23.0, 23.99])
def test_zero_at_night(curve, hour):
    assert curve.power_w(solar(curve, datetime(2026, 6, 21), hour)) == 0.0


@pytest.mark.parametrize("hour", [7.0, 10.0, 13.5, 17.0, 20.0])
def test_positive_by_day(curve, hour):
    assert curve.power_w(solar(curve, datetime(2026, 6, 21), hour)) > 0.0


def test_solar_hour_follows_longitude(curve):
    # 13.405 deg east: solar noon is 53.6 minutes before 12:00 UTC
    assert curve.solar_hour(datetime(2026, 6, 21, 12, 0, tzinfo=UTC)) == pytest.approx(
        12 + 13.405 * 4 / 60
    )
    west = DayCurve(longitude=-90.0)
    assert west.solar_hour(datetime(2026, 6, 21, 12, 0, tzinfo=UTC)) == pytest.approx(6.0)


def test_local_zone_of_the_timestamp_does_not_matter(curve):
    ts = datetime(2026, 6, 21, 11, 0, tzinfo=UTC)
    assert curve.power_w(ts) == curve.power_w(ts.astimezone(ZoneInfo("Asia/Kolkata")))


def test_peak_is_about_3_3_kw_in_the_early_afternoon(curve):
    values = day_of_10s_values(curve, datetime(2026, 6, 21))
    peak_ts, peak = max(values, key=lambda item: item[1])
    assert 3200.0 <= peak <= 3400.0
    assert 13.0 <= curve.solar_hour(peak_ts) <= 14.0


def test_peak_is_the_same_on_every_day(curve):
    for day in (datetime(2026, 1, 1), datetime(2026, 3, 29), datetime(2026, 10, 25)):
        peak = max(v for _, v in day_of_10s_values(curve, day))
        assert 3200.0 <= peak <= 3400.0


def test_smooth_adjacent_10_second_values_differ_by_less_than_10_w(curve):
    values = [v for _, v in day_of_10s_values(curve, datetime(2026, 6, 21))]
    assert max(abs(b - a) for a, b in pairwise(values)) < 10.0


def test_rounded_to_tenths(curve):
    for _, v in day_of_10s_values(curve, datetime(2026, 6, 21))[::97]:
        assert round(v, 1) == v


def test_larger_peak_is_capped_at_4000_w():
    big = DayCurve(longitude=0.0, peak_w=10_000.0)
    assert big.power_w(datetime(2026, 6, 21, 13, 30, tzinfo=UTC)) == MAX_W


@settings(max_examples=300, deadline=None)
@given(
    ts=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    longitude=st.floats(min_value=-180.0, max_value=180.0),
)
def test_never_below_0_or_above_4000_w(ts, longitude):
    assert 0.0 <= DayCurve(longitude=longitude).power_w(ts) <= 4000.0
