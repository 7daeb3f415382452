"""Replay: publish the readings a meter would have produced over a past period.

``meterd --replay START END [--speed FACTOR]`` samples the load model at every tick of
the meter's schedule in [START, END), with the ticks' own timestamps, and records them
in the meter's spool like live samples: they get the next seqs of the meter's sequence,
and the normal publisher sends them with confirms.  meterd exits 0 once every reading is
confirmed (or earlier on SIGTERM, leaving the unpublished ones in the spool).

* START and END are ISO 8601 dates or date-times; without an offset they mean UTC
  (``2026-06-21`` is 2026-06-21T00:00:00Z).
* Without ``--speed`` the replay runs as fast as the broker confirms: it stays at most
  :func:`max_backlog` readings ahead of the confirmations, so neither memory nor the
  spool's ``max_bytes`` is overrun.  ``--speed 3600`` replays an hour per second.
* The spool's ``max_age`` does not apply during a replay (the readings are old by
  design); the daemon arranges that (see :mod:`meterd.service`).
* With the ``household`` and ``uniform`` profiles a reading is a pure function of
  (meter id, seed, timestamp), so the replay gives exactly what a live meter with the
  same configuration gave.  ``random_walk`` carries state and gives another walk.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from meterd.sampler import Sampler
from pvsim import wire

log = logging.getLogger("meterd.replay")

EX_USAGE = 64


def parse_when(text: str) -> datetime:
    """An ISO 8601 date or date-time; naive values are UTC."""
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date or date-time: {text!r} "
            "(e.g. 2026-06-21, 2026-06-21T06:00:00Z or 2026-06-21T06:00:00+02:00)"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


class _Period(argparse.Action):
    """argparse type of --replay's START and END."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        try:
            start, end = (parse_when(v) for v in values)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"{option_string}: {exc}")
        if end <= start:
            parser.error(f"{option_string}: END must be after START")
        setattr(namespace, self.dest, (start, end))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("replay a past period")
    group.add_argument(
        "--replay",
        nargs=2,
        metavar=("START", "END"),
        action=_Period,
        help="publish the readings of the ticks in [START, END) (ISO dates or date-times, "
        "UTC unless an offset is given), then exit 0 once all are confirmed",
    )
    group.add_argument(
        "--speed",
        type=positive_number,
        metavar="FACTOR",
        help="with --replay: replay FACTOR times faster than real time "
        "(default: as fast as the broker confirms)",
    )


def max_backlog(publish_window: int, max_bytes: int | None) -> int:
    """How far a replay may run ahead of the broker's confirmations, in readings:
    two publish windows, and well within the spool's ``max_bytes`` (a record takes
    about 130 bytes; 256 leaves room)."""
    limit = 2 * publish_window
    if max_bytes is not None:
        limit = min(limit, max_bytes // 256)
    return max(1, limit)


class Replay:
    """Feeds the ticks of [start, end) to the sampler, from a thread of its own."""

    def __init__(
        self,
        sampler: Sampler,
        start: datetime,
        end: datetime,
        *,
        speed: float | None = None,
        backlog_limit: int = 2000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.sampler = sampler
        self.start_ts, self.end_ts = start, end
        schedule = sampler.schedule
        self.first = schedule.first_at_or_after(wire.to_epoch_us(start))
        self.stop_index = max(self.first, schedule.first_at_or_after(wire.to_epoch_us(end)))
        self.next_index = self.first
        self.speed = speed
        self.backlog_limit = backlog_limit
        self.clock = clock
        self.finished = threading.Event()  # every tick recorded
        self.started_at: float | None = None
        self._room = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def total(self) -> int:
        return self.stop_index - self.first

    @property
    def recorded(self) -> int:
        return self.next_index - self.first

    def describe(self) -> str:
        return f"{self.start_ts.isoformat()} .. {self.end_ts.isoformat()}"

    def on_confirmed(self) -> None:
        """The broker confirmed readings: there may be room to record more."""
        self._room.set()

    def loop(self, stop: threading.Event) -> None:
        schedule, spool = self.sampler.schedule, self.sampler.spool
        self.started_at = self.clock()
        first_us = schedule.time_of(self.first)
        while self.next_index < self.stop_index and not stop.is_set():
            index = self.next_index
            if self.speed is not None:
                due = self.started_at + (schedule.time_of(index) - first_us) / 1e6 / self.speed
                delay = due - self.clock()
                if delay > 0:
                    stop.wait(delay)
                    continue
            if spool.backlog >= self.backlog_limit:
                self._room.clear()
                if spool.backlog >= self.backlog_limit:  # no confirmation came in between
                    self._room.wait(1.0)
                continue
            if self.sampler.sample(index) is None:  # the spool cannot be written: retry
                stop.wait(1.0)
                continue
            self.next_index = index + 1
        if self.next_index >= self.stop_index:
            self.finished.set()

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self.loop, args=(stop,), name="replay", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._room.set()
            self._thread.join(timeout)
