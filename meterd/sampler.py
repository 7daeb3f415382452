"""The sampler: on every tick of the schedule, take a sample and record it in the spool.

It runs in its own thread and never waits on the broker, so it keeps its interval while
the publisher is stalled or reconnecting.  Clock and waiting are injected for tests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from meterd.load_model import LoadModel
from meterd.schedule import Schedule
from meterd.spool import Spool
from pvsim import wire

log = logging.getLogger("meterd.sampler")


def now_us() -> int:
    return time.time_ns() // 1000


class Sampler:
    """Takes a sample on every tick of the schedule and records it in the spool (in its
    own thread)."""

    def __init__(
        self,
        meter_id: str,
        schedule: Schedule,
        model: LoadModel,
        spool: Spool,
        on_recorded: Callable[[], None] = lambda: None,
        clock: Callable[[], int] = now_us,
    ):
        self.meter_id = meter_id
        self.schedule = schedule
        self.model = model
        self.spool = spool
        self.on_recorded = on_recorded
        self.clock = clock
        self.recorded = 0
        self.recorded_today = 0
        self._today = ""
        self.missed = 0
        self.last_ts_us: int | None = None
        self._storage_failing = False
        self._thread: threading.Thread | None = None

    def sample(self, index: int) -> int | None:
        """Take and record the sample of tick ``index``; returns its seq (None: not recorded)."""
        ts_us = self.schedule.time_of(index)
        ts = wire.from_epoch_us(ts_us)
        power = self.model.power_w(ts)

        def body(seq: int) -> bytes:
            return wire.encode(wire.Reading(self.meter_id, ts, power, seq))

        try:
            seq = self.spool.append(body, ts_us / 1_000_000)
        except OSError as exc:
            if not self._storage_failing:
                log.error("cannot record readings in the spool: %s", exc)
                self._storage_failing = True
            self.missed += 1
            return None
        if self._storage_failing:
            log.warning("spool writable again; recording resumed")
            self._storage_failing = False
        self.recorded += 1
        day = time.strftime("%Y-%m-%d", time.localtime(ts_us / 1_000_000))
        if day != self._today:
            self._today, self.recorded_today = day, 0
        self.recorded_today += 1
        self.last_ts_us = ts_us
        self.on_recorded()
        return seq

    def loop(self, stop: threading.Event) -> None:
        index = self.schedule.first_at_or_after(self.clock())
        while not stop.is_set():
            delay_us = self.schedule.time_of(index) - self.clock()
            if delay_us > 0:
                stop.wait(delay_us / 1_000_000)
                continue
            index, skipped = self.schedule.catch_up(index, self.clock())
            if skipped:
                self.missed += skipped
                log.warning("sampler fell behind; %d samples missed", skipped)
            self.sample(index)
            index += 1

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self.loop, args=(stop,), name="sampler", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
