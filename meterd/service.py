"""meterd's lifecycle: open the spool and start sampling (ready: spooling), then publish
the spool through broker sessions (the shared session loop reconnects with backoff)
until asked to stop; drain: publish the backlog for up to ``drain_timeout``."""

from __future__ import annotations

import argparse
import logging
import time

from meterd import load_model, replay
from meterd import metrics as meterd_metrics
from meterd.publisher import Publisher
from meterd.sampler import Sampler, format_us
from meterd.schedule import Schedule
from meterd.settings import SCHEMA
from meterd.spool import Spool
from pvsim import build_info
from pvsim.dirlock import DirectoryLock
from pvsim.lifecycle import Daemon, StartupError
from pvsim.metrics import Value

log = logging.getLogger("meterd")

# The loop wakes for new readings and confirms by itself; the tick only feeds the
# watchdog, updates STATUS and notices a stop or reload: once a second keeps an idle
# meterd at about 0 % CPU (a stop is noticed within a second).
TICK_S = 1.0


class MeterDaemon(Daemon):
    """Sample one house's power draw and publish each reading to RabbitMQ."""

    name = "meterd"
    schema = SCHEMA
    ready_needs_broker = False  # it samples and spools whether or not the broker is there
    metrics = meterd_metrics.METRICS
    metrics_hint = ": another meterd? every meterd@ instance needs its own [metrics] listen"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        replay.add_arguments(parser)

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)
        meter = self.config.meter
        period = getattr(self.args, "replay", None)
        if getattr(self.args, "speed", None) is not None and period is None:
            raise StartupError("--speed needs --replay START END", replay.EX_USAGE)
        self.meter_id: str = meter.id
        self.state_dir = meter.state_directory / self.meter_id
        # one meterd (live or --replay) per meter: the spool has one writer
        self.lock = DirectoryLock(self.state_dir, f"another meterd of meter {self.meter_id}")
        build_epoch = build_info.build_epoch()
        spool = self.config.spool
        self.spool = Spool(
            self.state_dir / "spool",
            fsync=spool.fsync,
            max_bytes=spool.max_bytes,
            # replayed readings are old by design: max_age would drop them at once
            max_age=spool.max_age if period is None else None,
        )
        self.sampler = Sampler(
            self.meter_id,
            Schedule.every(meter.interval),
            load_model.build(meter),
            self.spool,
            on_recorded=self._on_recorded,
            floor_us=None if build_epoch is None else build_epoch * 1_000_000,
        )
        self.replay: replay.Replay | None = None
        if period is not None:
            self.replay = replay.Replay(
                self.sampler,
                *period,
                speed=self.args.speed,
                backlog_limit=replay.max_backlog(
                    self.config.broker.publish_window, spool.max_bytes
                ),
            )
        self.published = 0  # confirmed by the broker since start
        self.sent = 0  # published (sent) since start, again after a lost connection
        self._draining_until: float | None = None

    @property
    def publisher(self) -> Publisher | None:
        return self.sessions.session

    # --- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            self.lock.acquire()  # DirectoryInUse: exit 75
        except OSError as exc:
            raise StartupError(f"cannot use the state directory {self.state_dir}: {exc}") from None
        try:
            self.spool.open()
        except OSError as exc:
            raise StartupError(f"cannot use the spool in {self.spool.directory}: {exc}") from None
        if self.replay is not None:
            log.info(
                "meter %s: replaying %s, %d readings every %g s, next seq %d",
                self.meter_id,
                self.replay.describe(),
                self.replay.total,
                self.config.meter.interval,
                self.spool.next_seq,
            )
            self.replay.start(self.signals.stop)
            return
        log.info(
            "meter %s: sampling every %g s, next seq %d; no timestamp before %s",
            self.meter_id,
            self.config.meter.interval,
            self.spool.next_seq,
            self._floor_text(),
        )
        self.sampler.start(self.signals.stop)

    def open_session(self, url: str) -> Publisher:
        publisher = Publisher(
            self.broker,
            self.meter_id,
            self.spool,
            self.config.broker.publish_window,
            tick=self._tick,
            on_confirmed=self._on_confirmed,
            on_published=self._on_published,
            tick_interval=TICK_S,
            stop=self.signals.stop,
        )
        publisher.connect(url)
        return publisher

    def on_session_open(self, session: Publisher) -> None:
        log.info("connected to %s", session.display_url)
        session.publish_pending()

    def drain(self) -> None:
        self.sampler.join(timeout=5)
        if self.replay is not None:
            self.replay.join(timeout=5)
            if not self.replay.finished.is_set() or self.spool.backlog:
                log.info(
                    "replay stopped early: %d of %d readings recorded",
                    self.replay.recorded,
                    self.replay.total,
                )
        publisher = self.publisher
        timeout = self.config.broker.drain_timeout
        if publisher is None or not publisher.is_ready or self.spool.backlog == 0 or timeout == 0:
            return
        log.info("publishing the last %d readings (up to %g s)", self.spool.backlog, timeout)
        self._draining_until = time.monotonic() + timeout
        publisher.publish_pending()
        self.sessions.resume("draining")

    def close(self) -> None:
        self.spool.close()
        self.lock.release()
        if self.spool.backlog:
            log.info("%d readings stay in the spool for the next start", self.spool.backlog)

    # --- running -----------------------------------------------------------------------

    def _on_recorded(self) -> None:
        publisher = self.publisher
        if publisher is not None:
            publisher.wake(publisher.publish_pending)

    def _floor_text(self) -> str:
        newest = self.spool.newest_us
        build = build_info.build_epoch()
        if newest is not None and (build is None or newest > build * 1_000_000):
            return f"the newest reading in the spool, {format_us(newest)}"
        if build is None:
            return "any (no build date known, and no reading in the spool)"
        return f"the build date, {build_info.build_date_text()}"

    def _on_published(self, count: int) -> None:
        self.sent += count

    def _on_confirmed(self, count: int) -> None:
        self.published += count
        self.sessions.did_work(count)
        if self.replay is not None:
            self.replay.on_confirmed()

    def _tick(self) -> None:
        self.heartbeat()
        publisher = self.publisher
        if publisher is None:
            return
        if self.replay is not None and self.replay.finished.is_set() and not self.spool.backlog:
            if not self.signals.stop.is_set():
                log.info(
                    "replay done: %d readings of %s published in %.1f s",
                    self.replay.total,
                    self.replay.describe(),
                    time.monotonic() - (self.replay.started_at or 0.0),
                )
                self.signals.stop.set()  # a clean stop, exit code 0
        if self._draining_until is not None:
            if self.spool.backlog == 0 or time.monotonic() >= self._draining_until:
                publisher.pause()
        elif self.signals.stop.is_set():
            publisher.pause()
        else:
            publisher.publish_pending()

    def status(self) -> str:
        link = self.sessions.describe("connected")
        last = self.sampler.last_ts_us
        age = "none yet" if last is None else f"{time.time() - last / 1e6:.0f} s ago"
        if self.replay is not None:
            return (
                f"{link}; replaying {self.replay.describe()}: {self.replay.recorded} of "
                f"{self.replay.total} recorded, {self.published} published, "
                f"backlog {self.spool.backlog}"
            )
        text = (
            f"{link}; {self.sampler.recorded_today} readings today, "
            f"{self.published} published since start, backlog {self.spool.backlog}; "
            f"last reading {age}"
        )
        trouble = []
        if self.sampler.missed:
            trouble.append(f"{self.sampler.missed} samples missed")
        if self.sampler.skipped:
            trouble.append(f"{self.sampler.skipped} samples skipped (clock stepped back)")
        if self.spool.skipped_records:
            trouble.append(f"{self.spool.skipped_records} corrupt spool records skipped")
        if trouble:
            text += "; " + ", ".join(trouble)
        if self.spool.dropped:
            text = f"SPOOL FULL: {self.spool.dropped} readings dropped; " + text
        clock = self.sampler.describe_clock()
        if clock is not None:
            text = f"{clock}; {text}"
        return text

    def metric_values(self) -> dict[str, Value]:
        return meterd_metrics.values(self)
