"""What pvsimd counts, for STATUS and its metrics: deliveries received, rows written,
repeats dropped, dead letters by reason, acknowledgements, failed writes, the rows of
the site's current day and the newest reading.

Plain integers, counted where it happens (one addition per delivery on the hot path);
the metrics thread only reads them (:mod:`pvsimd.metrics`)."""

from __future__ import annotations

from datetime import datetime, tzinfo

DEAD_LETTER_REASONS = ("invalid", "forged", "future")


class ReadingStats:
    """Counters of processed readings; ``rows_today`` follows the site's calendar day."""

    def __init__(self, tz: tzinfo):
        self.tz = tz
        self.received = 0  # deliveries handled (a redelivery counts again)
        self.rows = 0
        self.duplicates = 0
        self.dead_letters = dict.fromkeys(DEAD_LETTER_REASONS, 0)
        self.acknowledged = 0
        self.write_errors = 0  # failed writes or syncs of the CSV files
        self.last_ack_at: float | None = None  # monotonic
        self.owed_since: float | None = None  # monotonic: deliveries wait for an ack since
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

    def acknowledged_upto(self, count: int, now: float) -> None:
        """``count`` more deliveries were acknowledged at ``now`` (monotonic)."""
        self.acknowledged += count
        self.last_ack_at = now

    def owing(self, waiting: bool, now: float) -> None:
        """Called now and then: whether deliveries wait for an acknowledgement."""
        if not waiting:
            self.owed_since = None
        elif self.owed_since is None:
            self.owed_since = now

    def ack_lag(self, waiting: bool, now: float) -> float:
        """How long deliveries have waited for an acknowledgement, since the last one or
        since they began to wait (0 when none waits)."""
        if not waiting or self.owed_since is None:
            return 0.0
        since = self.owed_since
        if self.last_ack_at is not None and self.last_ack_at > since:
            since = self.last_ack_at
        return max(0.0, now - since)

    def late_repeats(self, count: int) -> None:
        """Rows counted when buffered turned out to be repeats when written (another
        pvsimd of a shared output directory had written them)."""
        self.rows -= count
        self.rows_today = max(0, self.rows_today - count)
        self.duplicates += count
