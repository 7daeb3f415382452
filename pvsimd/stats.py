"""What pvsimd counts for STATUS: rows written, repeats dropped, dead letters by reason,
the rows of the site's current day and the newest reading."""

from __future__ import annotations

from datetime import datetime, tzinfo

DEAD_LETTER_REASONS = ("invalid", "forged", "future")


class ReadingStats:
    """Counters of processed readings; ``rows_today`` follows the site's calendar day."""

    def __init__(self, tz: tzinfo):
        self.tz = tz
        self.rows = 0
        self.duplicates = 0
        self.dead_letters = dict.fromkeys(DEAD_LETTER_REASONS, 0)
        self.last_reading: datetime | None = None
        self.rows_today = 0
        self._today = ""  # the site's date, updated by new_day()
        self._day = ""  # the day rows_today counts
        self.new_day(datetime.now(tz))

    @property
    def rejected(self) -> int:
        """Messages dead-lettered, whatever the reason."""
        return sum(self.dead_letters.values())

    def new_day(self, now: datetime) -> None:
        """Called with the wall clock now and then: from the site's midnight on,
        "rows today" counts the new day."""
        self._today = now.astimezone(self.tz).date().isoformat()
        if self._day < self._today:
            self._day, self.rows_today = self._today, 0

    def row(self, day: str, ts: datetime) -> None:
        """A row was buffered for local ``day``."""
        self.rows += 1
        if day == self._day:
            self.rows_today += 1
        elif day >= self._today:
            self._day, self.rows_today = day, 1
        self.last_reading = ts

    def repeat(self, ts: datetime) -> None:
        self.duplicates += 1
        self.last_reading = ts

    def dead_letter(self, reason: str) -> None:
        """A message was dead-lettered, for one of :data:`DEAD_LETTER_REASONS`."""
        self.dead_letters[reason] += 1
