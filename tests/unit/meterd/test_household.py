"""The household load model: BDEW H0 with appliance events, one house per meter and seed."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterd import holidays
from meterd.holidays import SATURDAY, SUNDAY, WORKDAY, day_type, easter_sunday, period
from meterd.household import (
    MAX_W,
    MIN_W,
    Household,
    dynamisation,
    h0_curve,
    h0_day_wh,
    h0_table,
)

BERLIN = ZoneInfo("Europe/Berlin")


def _year_kwh(model: Household, year: int, step_s: int = 600) -> float:
    """The year's energy from samples every ``step_s`` seconds (local calendar year)."""
    start = datetime(year, 1, 1, tzinfo=model.tz).astimezone(UTC)
    end = datetime(year + 1, 1, 1, tzinfo=model.tz).astimezone(UTC)
    n = int((end - start).total_seconds()) // step_s
    total = sum(model.power_w(start + timedelta(seconds=step_s * i)) for i in range(n))
    return total * step_s / 3.6e6


# --- the data and the calendar ---------------------------------------------------------


def test_h0_table_holds_3_periods_by_3_day_types_by_96_quarter_hours():
    table = h0_table()
    assert set(table) == {
        (p, d)
        for p in ("winter", "summer", "transition")
        for d in ("workday", "saturday", "sunday")
    }
    assert all(len(curve) == 96 for curve in table.values())
    assert table[("winter", "saturday")][:2] == (70.8, 68.2)  # the file's first rows
    assert all(0 < w < 300 for curve in table.values() for w in curve)


def test_h0_with_dynamisation_is_about_1000_kwh_a_year():
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(365)]
    assert sum(map(h0_day_wh, days)) / 1000 == pytest.approx(1000, rel=0.01)


def test_dynamisation_factor():
    assert dynamisation(1) == pytest.approx(1.24203, abs=1e-5)
    assert dynamisation(202) == pytest.approx(0.78466, abs=1e-5)  # its summer minimum
    assert min(dynamisation(d) for d in range(1, 367)) == dynamisation(202)


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (1818, date(1818, 3, 22)),  # the earliest possible
        (1943, date(1943, 4, 25)),  # the latest possible
        (2000, date(2000, 4, 23)),
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2285, date(2285, 3, 22)),
    ],
)
def test_easter_sunday(year, easter):
    assert easter_sunday(year) == easter


def test_german_national_holidays_of_2026():
    assert sorted(holidays.national_holidays(2026)) == [
        date(2026, 1, 1),
        date(2026, 4, 3),  # Good Friday
        date(2026, 4, 6),  # Easter Monday
        date(2026, 5, 1),
        date(2026, 5, 14),  # Ascension
        date(2026, 5, 25),  # Whit Monday
        date(2026, 10, 3),
        date(2026, 12, 25),
        date(2026, 12, 26),
    ]
    assert not holidays.is_holiday(date(2026, 1, 6))  # Epiphany: regional only


@pytest.mark.parametrize(
    ("day", "kind"),
    [
        (date(2026, 6, 22), WORKDAY),  # a Monday
        (date(2026, 6, 20), SATURDAY),
        (date(2026, 6, 21), SUNDAY),
        (date(2026, 5, 14), SUNDAY),  # Ascension, a Thursday
        (date(2026, 4, 3), SUNDAY),  # Good Friday
        (date(2026, 10, 3), SUNDAY),  # a holiday on a Saturday
        (date(2026, 12, 24), SATURDAY),  # a Thursday
        (date(2026, 12, 31), SATURDAY),  # a Thursday
        (date(2028, 12, 24), SUNDAY),  # a Sunday stays a Sunday
        (date(2028, 12, 31), SUNDAY),
        (date(2027, 12, 24), SATURDAY),  # a Friday
        (date(2026, 12, 25), SUNDAY),
    ],
)
def test_day_types_with_holidays_and_christmas_and_new_years_eve(day, kind):
    assert day_type(day) == kind


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2026, 1, 15), "winter"),
        (date(2026, 3, 20), "winter"),
        (date(2026, 3, 21), "transition"),
        (date(2026, 5, 14), "transition"),
        (date(2026, 5, 15), "summer"),
        (date(2026, 9, 14), "summer"),
        (date(2026, 9, 15), "transition"),
        (date(2026, 10, 31), "transition"),
        (date(2026, 11, 1), "winter"),
        (date(2026, 12, 31), "winter"),
    ],
)
def test_periods(day, name):
    assert period(day) == name


def test_a_holiday_and_24_december_take_their_day_types_curve():
    table = h0_table()
    assert h0_curve(date(2026, 5, 14)) == table[("transition", "sunday")]  # Ascension
    assert h0_curve(date(2026, 12, 24)) == table[("winter", "saturday")]
    assert h0_curve(date(2026, 12, 23)) == table[("winter", "workday")]
    ascension = date(2026, 5, 14)
    assert h0_day_wh(ascension) == pytest.approx(
        dynamisation(134) * sum(table[("transition", "sunday")]) / 4
    )


def test_the_household_lives_its_holidays_like_sundays():
    """Averaged over houses, Christmas Day looks like a Sunday, not like a Friday."""
    table = h0_table()

    def mean_curve(day: date) -> list[float]:
        sums = [0.0] * 96
        for i in range(12):
            model = Household(f"house-{i}", seed=3)
            start = datetime(day.year, day.month, day.day, tzinfo=BERLIN)
            for k in range(0, 1440, 5):
                sums[k // 15] += model.power_w(start + timedelta(minutes=k))
        return sums

    curve = mean_curve(date(2026, 12, 25))  # a Friday
    sunday = statistics.correlation(curve, table[("winter", "sunday")])
    workday = statistics.correlation(curve, table[("winter", "workday")])
    assert sunday > workday


# --- energy and shape ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meter_id", "seed", "annual_kwh", "year"),
    [
        ("house-a", None, 3500, 2026),
        ("house-b", 42, 3500, 2026),
        ("house-c", 7, 1500, 2027),
        ("house-d", -1, 8000, 2028),  # a leap year
    ],
)
def test_a_simulated_year_holds_annual_kwh_within_2_percent(meter_id, seed, annual_kwh, year):
    model = Household(meter_id, seed, annual_kwh)
    assert _year_kwh(model, year) == pytest.approx(annual_kwh, rel=0.02)


def test_each_day_plan_adds_up_to_the_days_target():
    model = Household("house-a", 1)
    energies = model.day_energies(2026)
    assert sum(energies.values()) == pytest.approx(3500 * 1000)
    for i in range(0, 365, 3):
        plan = model.plan(date(2026, 1, 1) + timedelta(days=i))
        rest_wh = sum(plan.rest_w) / 4
        assert plan.constant_wh + plan.events_wh + rest_wh == pytest.approx(plan.energy_wh)
        assert rest_wh >= 0.099 * plan.energy_wh
        assert all(e.end_s < 86400 for e in plan.events)


@pytest.mark.parametrize("meter_id", ["house-a", "house-b", "house-c"])
@pytest.mark.parametrize("season", ["winter", "summer", "transition"])
def test_quarter_hour_means_over_a_seasons_workdays_follow_h0(meter_id, season):
    model = Household(meter_id, seed=None)
    sums = [0.0] * 96
    day = date(2026, 1, 1)
    while day.year == 2026:
        if period(day) == season and day_type(day) == WORKDAY:
            start = datetime(day.year, day.month, day.day, tzinfo=model.tz)
            for minute in range(0, 1440, 5):
                sums[minute // 15] += model.power_w(start + timedelta(minutes=minute))
        day += timedelta(days=1)
    r = statistics.correlation(sums, h0_table()[(season, WORKDAY)])
    assert r > 0.8, f"Pearson r {r:.3f}"


def test_one_house_looks_like_one_house_not_like_an_average():
    """Appliances make spikes of kilowatts; nights stay low; the fridge cycles."""
    model = Household("house-a", seed=5)
    start = datetime(2026, 2, 2, tzinfo=model.tz)
    peaks, nights = [], []
    for d in range(28):
        day = [model.power_w(start + timedelta(days=d, seconds=10 * i)) for i in range(8640)]
        peaks.append(max(day))
        nights.extend(day[2 * 360 : 4 * 360])  # 02:00-04:00
    assert sum(p > 1500 for p in peaks) >= 20
    assert max(nights) < 600
    night_levels = sorted(nights)
    # the fridge's compressor: the night's upper values sit about fridge_w above the lower
    gap = statistics.median(night_levels[-300:]) - statistics.median(night_levels[:300])
    assert gap > 0.5 * model.traits.fridge_w


# --- purity and bounds -----------------------------------------------------------------


def test_same_meter_seed_and_time_give_the_same_value_in_any_order():
    stamps = [
        datetime(2026, 6, 21, tzinfo=UTC) + timedelta(seconds=10 * i + 86400 * (i % 5))
        for i in range(2000)
    ]
    forward = Household("house-a", 9)
    values = {ts: forward.power_w(ts) for ts in stamps}
    shuffled = stamps[:]
    random.Random(1).shuffle(shuffled)
    fresh = Household("house-a", 9)
    assert {ts: fresh.power_w(ts) for ts in shuffled} == values
    local = [ts.astimezone(ZoneInfo("America/New_York")) for ts in stamps[:100]]
    assert [fresh.power_w(ts) for ts in local] == [values[ts] for ts in stamps[:100]]


def test_two_meters_and_two_seeds_differ():
    stamps = [datetime(2026, 6, 21, tzinfo=UTC) + timedelta(minutes=7 * i) for i in range(500)]

    def series(meter_id: str, seed: int | None) -> list[float]:
        model = Household(meter_id, seed)
        return [model.power_w(ts) for ts in stamps]

    a = series("house-a", 1)
    assert series("house-b", 1) != a
    assert series("house-a", 2) != a
    assert sum(x != y for x, y in zip(a, series("house-b", 1), strict=True)) > 400


def test_annual_kwh_scales_the_load():
    stamps = [datetime(2026, 3, 2, tzinfo=UTC) + timedelta(minutes=10 * i) for i in range(3000)]
    small_house, large_house = Household("h", 1, 1500), Household("h", 1, 6000)
    small = statistics.mean(small_house.power_w(ts) for ts in stamps)
    large = statistics.mean(large_house.power_w(ts) for ts in stamps)
    assert 2.5 < large / small < 6


def test_dst_days_repeat_or_skip_an_hour_of_the_curve():
    model = Household("house-a", 1)
    first = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=0)  # 00:30Z, CEST
    second = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1)  # 01:30Z, CET
    assert first.astimezone(UTC) != second.astimezone(UTC)
    assert model.components(first)["rest"] == pytest.approx(
        model.components(second)["rest"], rel=0.11
    )  # the same wall-clock time (only the ±5 % flicker differs)
    spring = datetime(2026, 3, 29, tzinfo=BERLIN)
    values = [model.power_w(spring + timedelta(minutes=m)) for m in range(0, 1380, 10)]
    assert all(MIN_W <= v <= MAX_W for v in values)


@settings(max_examples=150, deadline=None)
@given(
    ts=st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2200, 12, 31),
        timezones=st.just(UTC),
    ),
    seed=st.none() | st.integers(min_value=-(2**70), max_value=2**70),
    meter_id=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    annual_kwh=st.floats(min_value=100, max_value=20000),
    zone=st.sampled_from(["Europe/Berlin", "UTC", "Pacific/Chatham", "America/St_Johns"]),
)
def test_any_time_seed_and_meter_stays_within_0_and_9000_w(ts, seed, meter_id, annual_kwh, zone):
    model = Household(meter_id, seed, annual_kwh, zone)
    for offset in (0, 37, 3600, 43_210):
        value = model.power_w(ts + timedelta(seconds=offset))
        assert MIN_W <= value <= MAX_W
        assert round(value, 1) == value
        assert (
            Household(meter_id, seed, annual_kwh, zone).power_w(ts + timedelta(seconds=offset))
            == value
        )


def test_a_naive_timestamp_counts_as_utc():
    model = Household("house-a", 1)
    ts = datetime(2026, 6, 21, 12, 0, 5)
    assert model.power_w(ts) == model.power_w(ts.replace(tzinfo=UTC))


def test_annual_kwh_must_be_positive():
    with pytest.raises(ValueError):
        Household("house-a", 1, 0)
