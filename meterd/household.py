"""The household load model: one house, following the BDEW H0 standard load profile.

The H0 table (``meterd/data/bdew-h0.csv``) comes from the CC0-licensed R package
flrd/standardlastprofile (``inst/extdata/slp.csv``), which transcribes BDEW's published
tables (VDEW 1999): 3 periods × 3 day types × 96 quarter-hours, ``watts`` being the mean
power over the quarter-hour for a household using 1 000 kWh a year, before the
dynamisation factor F(d) of the day of the year.

:class:`Household` is a *pure function* of (meter id, seed, timestamp): it keeps no state
between samples (only caches), so a replay of a past period reproduces exactly what the
live meter published, and a restart does not change the house.  How a value is made:

1. **The day's energy.**  E = k · F(d) · (the day's H0 energy) · m, where the day's
   H0 curve is chosen by period and day type (see :mod:`meterd.holidays`), m is a
   random factor of the day (0.85-1.15, and 0.5 during one summer holiday of 7-14 days)
   and k is chosen *per calendar year* so that the year's days add up to ``annual_kwh``
   exactly.
2. **Constant loads.**  Standby (15-45 W) and a fridge whose compressor cycles (60-110 W,
   on 25-40 % of a 35-70 minute cycle); both scaled down for houses below 3 500 kWh/a.
3. **Appliance events**, drawn for the day from a random generator seeded with
   ``"{seed}:{meter_id}:{date}"``: kettle, toaster, hair dryer, microwave, hob, oven,
   washing machine, tumble dryer, dishwasher, vacuum cleaner, each with the house's own
   habits (wake-up, lunch and dinner times, which appliances it owns, how often).  Their
   rates scale with the day's energy.  Events end before midnight, so a day is
   self-contained.
4. **The rest** (lights, TV, computers, cooling and heating helpers ...) is a smooth
   curve shaped like the day's H0 curve minus the constant loads and minus this house's
   *average* event power at that time of day (estimated once per house and day type
   from sample days, smoothed over ±1 hour; the shape never below 35 % of H0), so that
   the mean over many days follows H0 again.  It is varied by a random hourly activity
   factor and a ±5 % flicker per sample, and scaled to carry exactly the day's energy
   minus the constant loads and the events actually drawn.  Should the events leave
   less than 10 % of the day's energy for it, the last drawn events are dropped.  So
   each day, and hence the year, holds its target energy (in expectation over the
   flicker and the sampling instants), however many events the dice gave.

The curves are in the house's local wall-clock time (``timezone``): the day of a DST
switch has 23 or 25 hours and skips or repeats an hour of the curve.  Values are
clipped to 0-9000 W (which only very large ``annual_kwh`` reach) and rounded to 0.1 W.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import math
import random
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

from meterd.holidays import SATURDAY, SUNDAY, WORKDAY, day_type, period

MIN_W = 0.0
MAX_W = 9000.0
QUARTERS = 96
QUARTER_S = 900.0
DAY_S = 86400.0
REFERENCE_KWH = 3500.0  # the household the appliance habits below are made for
_REFERENCE_DAY_WH = REFERENCE_KWH * 1000.0 / 365.0
_MIN_REST_SHARE = 0.10
_EXPECTATION_DAYS = 64
_REST_FLOOR = 0.35  # the shape of the rest never falls below this share of H0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


# --- the H0 table ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def h0_table() -> dict[tuple[str, str], tuple[float, ...]]:
    """(period, day type) → the 96 quarter-hour means in W for 1 000 kWh/a."""
    text = resources.files("meterd").joinpath("data/bdew-h0.csv").read_text(encoding="utf-8")
    rows: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row["profile_id"] != "H0":
            continue
        rows.setdefault((row["period"], row["day"]), []).append(
            (row["timestamp"], float(row["watts"]))
        )
    table = {}
    for key, values in rows.items():
        values.sort()
        if len(values) != QUARTERS or values[0][0] != "00:00" or values[-1][0] != "23:45":
            raise ValueError(f"bdew-h0.csv: {key} does not hold 96 quarter-hours")
        table[key] = tuple(w for _t, w in values)
    if len(table) != 9:
        raise ValueError("bdew-h0.csv: expected 3 periods x 3 day types")
    return table


def h0_curve(day: date) -> tuple[float, ...]:
    """The day's 96 H0 quarter-hour means (W at 1 000 kWh/a, without dynamisation)."""
    return h0_table()[(period(day), day_type(day))]


def dynamisation(day_of_year: int) -> float:
    """BDEW's dynamisation factor F(d) for the H0 profile (d = 1 on 1 January)."""
    d = day_of_year
    return -3.92e-10 * d**4 + 3.2e-7 * d**3 - 7.02e-5 * d**2 + 2.1e-3 * d + 1.24


def h0_day_wh(day: date) -> float:
    """The H0 energy of ``day`` in Wh at 1 000 kWh/a, dynamised."""
    return dynamisation(day.timetuple().tm_yday) * sum(h0_curve(day)) * QUARTER_S / 3600.0


# --- deterministic randomness ------------------------------------------------------------


def seed_int(*parts: object) -> int:
    text = ":".join("" if p is None else str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big")


_MASK64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a fast, well-spread hash of a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def unit_hash(key: int, value: int) -> float:
    """A uniform number in [0, 1) from (key, value), the same on every run and machine."""
    return _mix64((key ^ value) & _MASK64) / 2.0**64


class Dice:
    """Draws built on ``random.Random.random`` only, whose sequence for an integer seed
    is stable across Python versions (unlike e.g. ``randrange`` or ``choice``)."""

    def __init__(self, *seed_parts: object):
        self.random = random.Random(seed_int(*seed_parts)).random

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def chance(self, p: float) -> bool:
        return self.random() < p

    def normal(self) -> float:
        """About N(0, 1) (Irwin-Hall with 12 terms)."""
        return sum(self.random() for _ in range(12)) - 6.0

    def poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        limit, k, p = math.exp(-lam), 0, self.random()
        while p > limit:
            k += 1
            p *= self.random()
        return k


# --- appliance events --------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """An appliance run: from ``start_s`` (wall-clock seconds after midnight) a program
    of (duration s, W) segments."""

    name: str
    start_s: float
    ends: tuple[float, ...]  # cumulative segment ends, seconds after start
    watts: tuple[float, ...]

    @classmethod
    def make(cls, name: str, start_s: float, program: list[tuple[float, float]]) -> Event:
        total = sum(d for d, _w in program)
        start = min(max(0.0, start_s), DAY_S - total - 1.0)  # ends before midnight
        ends, t = [], 0.0
        for duration, _w in program:
            t += duration
            ends.append(t)
        return cls(name, start, tuple(ends), tuple(w for _d, w in program))

    @property
    def end_s(self) -> float:
        return self.start_s + self.ends[-1]

    @property
    def energy_wh(self) -> float:
        previous, wh = 0.0, 0.0
        for end, w in zip(self.ends, self.watts, strict=True):
            wh += (end - previous) * w / 3600.0
            previous = end
        return wh

    def power_at(self, t: float) -> float:
        offset = t - self.start_s
        if offset < 0 or offset >= self.ends[-1]:
            return 0.0
        return self.watts[bisect.bisect_right(self.ends, offset)]


def _cycling(
    dice: Dice,
    total_s: float,
    on_w: float,
    on_s: tuple[float, float],
    off_s: tuple[float, float],
    off_w: float = 0.0,
) -> list[tuple[float, float]]:
    """A thermostat: on and off in turns for about ``total_s`` seconds."""
    program, t, on = [], 0.0, True
    while t < total_s:
        duration = dice.uniform(*(on_s if on else off_s))
        program.append((duration, on_w if on else off_w))
        t += duration
        on = not on
    return program


@dataclass(frozen=True)
class Traits:
    """What makes one house this house: drawn once from (seed, meter id)."""

    standby_w: float
    fridge_w: float
    fridge_period_s: float
    fridge_duty: float
    fridge_phase_s: float
    wake_workday_h: float
    wake_weekend_h: float
    lunch_h: float
    dinner_h: float
    kettle_w: float
    kettles_per_day: float
    hair_dryer_per_day: float
    hob_w: float
    oven_w: float
    washes_per_week: float
    has_dryer: bool
    has_dishwasher: bool
    holiday_start_doy: int
    holiday_days: int

    @classmethod
    def draw(cls, seed: object, meter_id: str) -> Traits:
        d = Dice(seed, meter_id, "house")
        return cls(
            standby_w=d.uniform(15, 45),
            fridge_w=d.uniform(60, 110),
            fridge_period_s=d.uniform(35, 70) * 60,
            fridge_duty=d.uniform(0.25, 0.40),
            fridge_phase_s=d.uniform(0, 4200),
            wake_workday_h=d.uniform(5.5, 7.5),
            wake_weekend_h=d.uniform(7.0, 9.5),
            lunch_h=d.uniform(11.75, 13.0),
            dinner_h=d.uniform(17.5, 19.5),
            kettle_w=d.uniform(1800, 2400),
            kettles_per_day=d.uniform(0.5, 3.5),
            hair_dryer_per_day=d.uniform(0.0, 0.8),
            hob_w=d.uniform(1500, 2200),
            oven_w=d.uniform(2000, 3000),
            washes_per_week=d.uniform(2, 5),
            has_dryer=d.chance(0.45),
            has_dishwasher=d.chance(0.7),
            holiday_start_doy=int(d.uniform(182, 230)),
            holiday_days=int(d.uniform(7, 15)),
        )


def draw_events(dice: Dice, tr: Traits, kind: str, rate: float) -> list[Event]:
    """The day's appliance runs, in the order drawn; ``rate`` scales how many."""
    h = 3600.0
    u = dice.uniform
    weekend = kind != WORKDAY
    # today's habits: the house's own times, shifted a little from day to day
    wake = ((tr.wake_weekend_h if weekend else tr.wake_workday_h) + u(-0.5, 0.5)) * h
    lunch_h = tr.lunch_h + u(-0.75, 0.75)
    dinner_h = tr.dinner_h + u(-0.75, 0.75)
    events: list[Event] = []

    def add(name: str, start_s: float, program: list[tuple[float, float]]) -> Event:
        event = Event.make(name, start_s, program)
        events.append(event)
        return event

    for _ in range(dice.poisson(tr.kettles_per_day * rate)):
        r = dice.random()
        if r < 0.45:
            start = wake + u(0.05, 1.0) * h
        elif r < 0.7:
            start = u(10.0, 12.0) * h if weekend and r < 0.6 else u(14.5, 17.0) * h
        else:
            start = u(19.0, 22.5) * h
        add("kettle", start, [(u(120, 240), tr.kettle_w)])
    for _ in range(dice.poisson(0.35 * rate)):
        add("toaster", wake + u(0.1, 0.8) * h, [(u(120, 240), u(800, 1000))])
    for _ in range(dice.poisson(tr.hair_dryer_per_day * rate)):
        add("hair dryer", wake + u(0.2, 1.0) * h, [(u(180, 480), u(1200, 2000))])
    for _ in range(dice.poisson(0.7 * rate)):
        meal = lunch_h if dice.chance(0.5) else dinner_h
        add("microwave", (meal + u(-1.0, 0.5)) * h, [(u(60, 360), u(700, 1100))])

    meals = [(dinner_h, 0.8)] if not weekend else [(lunch_h, 0.8), (dinner_h, 0.6)]
    for meal, per_day in meals:
        for _ in range(dice.poisson(per_day * rate)):
            boil = [(u(180, 420), tr.hob_w * u(1.0, 1.4))]
            simmer = _cycling(dice, u(600, 2100), tr.hob_w * 0.8, (40, 120), (30, 120))
            add("hob", (meal - u(0.1, 1.0)) * h, boil + simmer)
    for _ in range(dice.poisson((0.35 if weekend else 0.12) * rate)):
        meal = lunch_h if weekend and dice.chance(0.5) else dinner_h
        heat = [(u(480, 900), tr.oven_w)]
        hold = _cycling(dice, u(900, 3000), tr.oven_w, (60, 150), (90, 200))
        add("oven", (meal - u(0.7, 1.5)) * h, heat + hold)

    washes = tr.washes_per_week / 7.0 * {WORKDAY: 0.8, SATURDAY: 2.0, SUNDAY: 0.4}[kind]
    for _ in range(dice.poisson(washes * rate)):
        start = (u(wake / h + 0.5, 19.5) if weekend else u(8.0, 19.5)) * h
        wash = add(
            "washing machine",
            start,
            [
                (u(60, 180), u(20, 60)),  # filling
                (u(600, 1200), u(1800, 2200)),  # heating the water
                (u(2400, 4200), u(120, 300)),  # washing and rinsing
                (u(480, 720), u(350, 600)),  # spinning
            ],
        )
        if tr.has_dryer and dice.chance(0.65):
            program = _cycling(dice, u(3600, 6000), u(2000, 2600), (240, 420), (60, 120), 200)
            add("tumble dryer", wash.end_s + u(300, 3600), program)
    if tr.has_dishwasher:
        for _ in range(dice.poisson((0.8 if weekend else 0.6) * rate)):
            add(
                "dishwasher",
                (dinner_h + u(0.8, 3.0)) * h,
                [
                    (u(60, 180), 20.0),
                    (u(900, 1200), u(1900, 2200)),  # heating for the wash
                    (u(1800, 3000), u(80, 150)),  # washing
                    (u(600, 900), u(1900, 2200)),  # heating for the rinse
                    (u(1200, 2400), u(10, 30)),  # drying
                ],
            )
    vacuum = {WORKDAY: 0.12, SATURDAY: 0.5, SUNDAY: 0.05}[kind]
    for _ in range(dice.poisson(vacuum * rate)):
        add("vacuum cleaner", u(9.0, 18.0) * h, [(u(600, 1800), u(700, 1400))])
    return events


# --- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DayPlan:
    """Everything about one day of one house, computed once."""

    day: date
    energy_wh: float  # the day's target
    rest_w: tuple[float, ...]  # the smooth part: 96 quarter-hour means
    events: tuple[Event, ...]
    constant_wh: float
    dropped_events: int

    @property
    def events_wh(self) -> float:
        return sum(e.energy_wh for e in self.events)


class Household:
    """The ``household`` load model (see the module docstring)."""

    def __init__(
        self,
        meter_id: str,
        seed: int | None = None,
        annual_kwh: float = REFERENCE_KWH,
        timezone: tzinfo | str = "Europe/Berlin",
    ):
        if annual_kwh <= 0:
            raise ValueError("annual_kwh must be positive")
        self.meter_id = meter_id
        self.seed = seed
        self.annual_kwh = float(annual_kwh)
        self.tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self.traits = Traits.draw(seed, meter_id)
        self.small = min(1.0, self.annual_kwh / REFERENCE_KWH)  # scales the constant loads
        self._flicker_key = seed_int(seed, meter_id, "flicker") & _MASK64
        self._years: dict[int, dict[date, float]] = {}
        self._plans: OrderedDict[date, DayPlan] = OrderedDict()
        self._expected: dict[str, tuple[float, ...]] = {}

    # --- per year and per day ------------------------------------------------------------

    def day_energies(self, year: int) -> dict[date, float]:
        """Each day's target energy (Wh) in ``year``; they add up to ``annual_kwh``."""
        energies = self._years.get(year)
        if energies is None:
            dice = Dice(self.seed, self.meter_id, "year", year)
            tr = self.traits
            holiday = range(tr.holiday_start_doy, tr.holiday_start_doy + tr.holiday_days)
            day, raw = date(year, 1, 1), {}
            while day.year == year:
                factor = dice.uniform(0.85, 1.15)
                if day.timetuple().tm_yday in holiday:
                    factor *= 0.5
                raw[day] = h0_day_wh(day) * factor
                day += timedelta(days=1)
            scale = self.annual_kwh * 1000.0 / sum(raw.values())
            energies = {d: wh * scale for d, wh in raw.items()}
            if len(self._years) >= 4:
                self._years.pop(next(iter(self._years)))
            self._years[year] = energies
        return energies

    def expected_events(self, kind: str) -> tuple[float, ...]:
        """The mean power (W) of this house's events per quarter-hour on a day of type
        ``kind`` at rate 1, estimated from :data:`_EXPECTATION_DAYS` sample days, each
        event's energy spread evenly over its run."""
        expected = self._expected.get(kind)
        if expected is None:
            buckets = [0.0] * QUARTERS
            for i in range(_EXPECTATION_DAYS):
                for e in draw_events(Dice(self.seed, self.meter_id, kind, i), self.traits, kind, 1):
                    power = e.energy_wh * 3600.0 / e.ends[-1]
                    for q in range(int(e.start_s // QUARTER_S), int(e.end_s // QUARTER_S) + 1):
                        lo, hi = max(e.start_s, q * QUARTER_S), min(e.end_s, (q + 1) * QUARTER_S)
                        if hi > lo:
                            buckets[q] += power * (hi - lo) / QUARTER_S
            # smoothed over ±1 hour: the rest gives way to the events broadly, not in holes
            width = 4
            kernel = [width + 1 - abs(k) for k in range(-width, width + 1)]
            expected = tuple(
                sum(
                    kw * buckets[min(max(q + k, 0), QUARTERS - 1)]
                    for k, kw in zip(range(-width, width + 1), kernel, strict=True)
                )
                / (sum(kernel) * _EXPECTATION_DAYS)
                for q in range(QUARTERS)
            )
            self._expected[kind] = expected
        return expected

    def plan(self, day: date) -> DayPlan:
        plan = self._plans.get(day)
        if plan is None:
            plan = self._make_plan(day)
            self._plans[day] = plan
            while len(self._plans) > 8:
                self._plans.popitem(last=False)
        return plan

    def _make_plan(self, day: date) -> DayPlan:
        tr = self.traits
        energy = self.day_energies(day.year)[day]
        constant_w = (tr.standby_w + tr.fridge_w * tr.fridge_duty) * self.small
        constant_wh = constant_w * 24.0
        dice = Dice(self.seed, self.meter_id, day.isoformat())
        kind = day_type(day)
        events = draw_events(dice, tr, kind, energy / _REFERENCE_DAY_WH)
        dropped = 0
        events_wh = sum(e.energy_wh for e in events)
        while events and energy - constant_wh - events_wh < _MIN_REST_SHARE * energy:
            events_wh -= events.pop().energy_wh
            dropped += 1
        rest_wh = max(0.0, energy - constant_wh - events_wh)
        # the rest fills the day's H0 curve where the events, on average, do not
        curve = h0_curve(day)
        target = energy / (sum(curve) * QUARTER_S / 3600.0)
        expected = self.expected_events(kind)
        rate = energy / _REFERENCE_DAY_WH
        # an activity factor per hour (log-normal), interpolated to the quarter-hours
        knots = [math.exp(0.3 * dice.normal()) for _ in range(25)]
        weights = []
        for q, w in enumerate(curve):
            base = max(_REST_FLOOR * w * target, w * target - constant_w - rate * expected[q])
            x = (q + 0.5) / 4.0
            i = int(x)
            weights.append(base * (knots[i] + (knots[i + 1] - knots[i]) * (x - i)))
        total = sum(weights) * QUARTER_S / 3600.0
        rest = tuple(rest_wh * w / total for w in weights)
        return DayPlan(day, energy, rest, tuple(events), constant_wh, dropped)

    # --- the value at a moment ---------------------------------------------------------

    def components(self, ts: datetime) -> dict[str, float]:
        """The parts of the value at ``ts`` in W (before clipping and rounding)."""
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        ts_us = (ts - _EPOCH) // _ONE_US
        local = ts.astimezone(self.tz)
        t = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        plan = self.plan(local.date())
        tr = self.traits
        # the smooth rest: linear between quarter-hour centres (keeps each day's energy)
        x = t / QUARTER_S - 0.5
        if x <= 0:
            rest = plan.rest_w[0]
        elif x >= QUARTERS - 1:
            rest = plan.rest_w[-1]
        else:
            i = int(x)
            rest = plan.rest_w[i] + (plan.rest_w[i + 1] - plan.rest_w[i]) * (x - i)
        rest *= 0.95 + 0.1 * unit_hash(self._flicker_key, ts_us)
        cycle = (ts_us / 1e6 + tr.fridge_phase_s) % tr.fridge_period_s
        fridge = tr.fridge_w if cycle < tr.fridge_duty * self.small * tr.fridge_period_s else 0.0
        return {
            "standby": tr.standby_w * self.small,
            "fridge": fridge,
            "rest": rest,
            "events": sum(e.power_at(t) for e in plan.events),
        }

    def power_w(self, ts: datetime) -> float:
        value = sum(self.components(ts).values())
        return round(min(max(value, MIN_W), MAX_W), 1)
