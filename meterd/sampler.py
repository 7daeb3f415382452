"""The sampler: on every tick of the schedule, take a sample and record it in the spool.

It runs in its own thread and never waits on the broker, so it keeps its interval while
the publisher is stalled or reconnecting.  The clocks (wall and monotonic) and waiting
are injected for tests.

The wall clock is watched (:mod:`meterd.clock_watch`):

* it samples nothing until the clock reaches the trust floor — the build date or the
  newest reading in the spool — and says so (``waiting for a trustworthy clock``);
* a step forward leaves the ticks in between missed (:attr:`Sampler.missed`), never
  back-filled;
* after a step back it follows the new time's grid at once (within one interval), with
  one WARNING, and skips every tick whose time is not after the newest reading it
  recorded (:attr:`Sampler.skipped`): no timestamp is ever recorded twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from meterd.clock_watch import ClockState, ClockWatch
from meterd.load_model import LoadModel
from meterd.schedule import Schedule
from meterd.spool import Spool
from pvsim import wire

log = logging.getLogger("meterd.sampler")

WAIT_POLL_S = 1.0  # how often a sampler waiting for a trustworthy clock looks again


def now_us() -> int:
    """The wall clock, microseconds since the epoch."""
    return time.time_ns() // 1000


def monotonic_us() -> int:
    return time.monotonic_ns() // 1000


def format_us(us: int) -> str:
    return wire.format_ts(wire.from_epoch_us(us))


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
        monotonic: Callable[[], int] = monotonic_us,
        floor_us: int | None = None,
    ):
        self.meter_id = meter_id
        self.schedule = schedule
        self.model = model
        self.spool = spool
        self.on_recorded = on_recorded
        self.clock = clock
        self.monotonic = monotonic
        self.watch = ClockWatch(floor_us, "the build date")
        self.sampled = 0  # samples taken (recorded or not)
        self.recorded = 0
        self.recorded_today = 0
        self._today = ""
        self.missed = 0  # ticks that passed without a sample
        self.skipped = 0  # ticks not sampled: their time was already recorded
        self.last_ts_us: int | None = None
        self.newest_us: int | None = None  # the newest reading recorded, ever
        self._storage_failing = False
        self._thread: threading.Thread | None = None

    def sample(self, index: int) -> int | None:
        """Take and record the sample of tick ``index``; returns its seq (None: not recorded)."""
        ts_us = self.schedule.time_of(index)
        ts = wire.from_epoch_us(ts_us)
        power = self.model.power_w(ts)
        self.sampled += 1

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
        if self.newest_us is None or ts_us > self.newest_us:
            self.newest_us = ts_us
        self.on_recorded()
        return seq

    # --- the live loop ---------------------------------------------------------------

    def loop(self, stop: threading.Event) -> None:
        newest = self.spool.newest_us
        if newest is not None and (self.newest_us is None or newest > self.newest_us):
            self.newest_us = newest
        self.watch.raise_floor(newest, "the newest reading in the spool")
        if not self._wait_for_trust(stop):
            return
        now = self.clock()
        self.watch.step(now, self.monotonic())  # the first look
        index = self.schedule.first_at_or_after(now)
        if self.newest_us is not None:
            index = max(index, self.newest_us // self.schedule.interval_us + 1)
        while not stop.is_set():
            now = self.clock()
            jump = self.watch.step(now, self.monotonic())
            if jump < 0:
                index = self._stepped_back(now, jump)
            due = self.schedule.time_of(index)
            if due > now:
                stop.wait((due - now) / 1_000_000)
                continue
            index, missed = self.schedule.catch_up(index, now)
            if jump > 0:
                log.warning(
                    "the clock stepped forward by %s s, to %s: %d samples missed "
                    "(never filled in)",
                    _seconds(jump),
                    format_us(now),
                    missed,
                )
            elif missed:
                log.warning("sampler fell behind; %d samples missed", missed)
            self.missed += missed
            self._take(index)
            index += 1

    def _take(self, index: int) -> None:
        """Sample tick ``index`` unless its time is not after the newest reading."""
        ts_us = self.schedule.time_of(index)
        if self.newest_us is not None and ts_us <= self.newest_us:
            self.skipped += 1
            return
        if self.watch.state is ClockState.BEHIND:
            log.info(
                "the clock passed the newest reading recorded: sampling again "
                "(%d samples skipped since the clock stepped back)",
                self.skipped,
            )
            self.watch.state = ClockState.OK
        self.sample(index)

    def _stepped_back(self, now: int, jump: int) -> int:
        """The clock stepped back: the tick to sample next, on the new time's grid."""
        index = self.schedule.first_at_or_after(now)
        newest = self.newest_us
        if newest is not None and self.schedule.time_of(index) <= newest:
            self.watch.state = ClockState.BEHIND
            ahead = newest // self.schedule.interval_us - index + 1
            log.warning(
                "the clock stepped back by %s s, to %s: sampling goes on at its ticks, "
                "skipping the %d up to %s, whose readings were recorded already",
                _seconds(-jump),
                format_us(now),
                ahead,
                format_us(newest),
            )
        else:
            log.warning(
                "the clock stepped back by %s s, to %s: sampling goes on at its ticks",
                _seconds(-jump),
                format_us(now),
            )
        return index

    def _wait_for_trust(self, stop: threading.Event) -> bool:
        """Wait until the wall clock reaches the floor; False when a stop came first."""
        watch = self.watch
        while not stop.is_set():
            now = self.clock()
            if watch.trusted(now):
                if watch.state is ClockState.WAITING:
                    log.info("the clock says %s now: trustworthy, sampling", format_us(now))
                watch.state = ClockState.OK
                return True
            if watch.state is not ClockState.WAITING:
                watch.state = ClockState.WAITING
                log.warning(
                    "waiting for a trustworthy clock: it says %s, before %s (%s)",
                    format_us(now),
                    format_us(watch.floor_us),
                    watch.floor_source,
                )
            stop.wait(WAIT_POLL_S)
        return False

    def describe_clock(self) -> str | None:
        """What STATUS says about the clock (None: nothing to say)."""
        watch = self.watch
        if watch.state is ClockState.WAITING:
            return (
                f"waiting for a trustworthy clock: it says {format_us(self.clock())}, "
                f"not before {format_us(watch.floor_us)} ({watch.floor_source})"
            )
        return None

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self.loop, args=(stop,), name="sampler", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


def _seconds(us: int) -> str:
    return f"{us / 1_000_000:.1f}".removesuffix(".0")
