"""The per-reading context: what pvsimd computes once for each distinct timestamp.

A meter samples on its interval's grid, so the readings of a neighbourhood share few
distinct timestamps: 10 000 meters at 10 s bring 10 000 readings but one timestamp
every 10 s.  Everything that depends on the timestamp alone — the instant itself, its
epoch microseconds (a row's identity), the site's local day (the file) and local time
text (the row's first column), and the PV power — is computed once, on the first
reading that carries the timestamp's text, and kept in :class:`Moments`, the one cache
on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo

from pvsim import wire
from pvsimd.csv_format import format_local_ts

CACHE_SIZE = 16384  # distinct timestamps remembered (about 400 bytes each)


class Moment:
    """What depends on a reading's timestamp alone; the PV power is computed when it is
    first asked for (a message refused by the checks after decoding never pays for it)."""

    __slots__ = ("ts", "epoch_us", "day", "local", "_pv_w", "_pv_power")

    def __init__(
        self,
        ts: datetime,
        epoch_us: int,
        day: str,
        local: str,
        pv_power: Callable[[datetime], float],
    ):
        self.ts = ts  # aware, UTC
        self.epoch_us = epoch_us  # microseconds since the epoch: the reading's identity
        self.day = day  # the site's local day, YYYY-MM-DD: the day file
        self.local = local  # the site's local time, ISO 8601 with offset: the row's first column
        self._pv_w: float | None = None
        self._pv_power = pv_power

    @property
    def pv_w(self) -> float:
        """The PV power at this instant, W."""
        pv_w = self._pv_w
        if pv_w is None:
            pv_w = self._pv_w = self._pv_power(self.ts)
        return pv_w


class Moments:
    """Moments by timestamp text, computed once each (``pv_power(ts)`` gives the PV)."""

    def __init__(
        self, tz: tzinfo, pv_power: Callable[[datetime], float], size: int = CACHE_SIZE
    ):
        self.tz = tz
        self.pv_power = pv_power
        self.size = size
        self._by_text: dict[str, Moment] = {}

    def at(self, ts_text: str) -> Moment:
        """The moment of an RFC 3339 timestamp; InvalidReading when it is not one."""
        moment = self._by_text.get(ts_text)
        if moment is None:
            moment = self.of(wire.parse_ts(ts_text))
            if len(self._by_text) >= self.size:
                self._by_text.clear()
            self._by_text[ts_text] = moment
        return moment

    def of(self, ts: datetime) -> Moment:
        """The moment of an aware datetime (not cached)."""
        local = ts.astimezone(self.tz)
        return Moment(
            ts,
            wire.to_epoch_us(ts),
            local.date().isoformat(),
            format_local_ts(ts, self.tz),
            self.pv_power,
        )
