"""The calendar of the BDEW standard load profiles: periods, day types, German holidays.

* Periods: winter 1 Nov - 20 Mar, summer 15 May - 14 Sep, transition otherwise.
* Day types: ``workday``, ``saturday``, ``sunday``.  Sundays and the German national
  holidays count as ``sunday``; 24 and 31 December count as ``saturday`` unless they
  fall on a Sunday.
* Holidays: the nine national ones (fixed dates, and those that follow Easter Sunday,
  computed with the anonymous Gregorian algorithm).  Regional holidays (Epiphany,
  Corpus Christi, Reformation Day, ...) are left out on purpose: they differ by state.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

WORKDAY = "workday"
SATURDAY = "saturday"
SUNDAY = "sunday"

WINTER = "winter"
SUMMER = "summer"
TRANSITION = "transition"


def easter_sunday(year: int) -> date:
    """Easter Sunday of ``year`` (Gregorian calendar; the anonymous algorithm of 1876)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=64)
def national_holidays(year: int) -> dict[date, str]:
    """Germany's national public holidays of ``year``, date → name."""
    easter = easter_sunday(year)
    days = {
        date(year, 1, 1): "Neujahr",
        easter - timedelta(days=2): "Karfreitag",
        easter + timedelta(days=1): "Ostermontag",
        date(year, 5, 1): "Tag der Arbeit",
        easter + timedelta(days=39): "Christi Himmelfahrt",
        easter + timedelta(days=50): "Pfingstmontag",
        date(year, 10, 3): "Tag der Deutschen Einheit",
        date(year, 12, 25): "1. Weihnachtstag",
        date(year, 12, 26): "2. Weihnachtstag",
    }
    return days


def is_holiday(day: date) -> bool:
    return day in national_holidays(day.year)


def day_type(day: date) -> str:
    """``workday``, ``saturday`` or ``sunday`` as the BDEW profiles use them."""
    if day.weekday() == 6 or is_holiday(day):
        return SUNDAY
    if day.weekday() == 5 or (day.month == 12 and day.day in (24, 31)):
        return SATURDAY
    return WORKDAY


def period(day: date) -> str:
    """``winter`` (1 Nov - 20 Mar), ``summer`` (15 May - 14 Sep) or ``transition``."""
    md = (day.month, day.day)
    if md >= (11, 1) or md <= (3, 20):
        return WINTER
    if (5, 15) <= md <= (9, 14):
        return SUMMER
    return TRANSITION
