"""The daemon lifecycle, the same for meterd and pvsimd:

    load config → open → connect → ready → run → drain → stop

:func:`main` loads the config and does the process-level work (arguments, exit codes,
logging, signals, sd_notify); :meth:`Daemon.serve` runs the rest: *open* the local state
(meterd: the spool and the sampler; pvsimd: the output directory and the journal),
*connect* a broker session (:mod:`pvsim.session_loop`, with backoff), *ready* (READY=1;
meterd is ready right after open, since it samples whether or not the broker is
there), *run* the session loop until a stop is requested, *drain* in-flight work, and
*stop*: close the session and the local state.  A :class:`Daemon` subclass supplies the
steps.  From open to stop the daemon serves its Prometheus metrics (``[metrics]
listen``, :mod:`pvsim.metrics`): the shared ones and the subclass's
:attr:`Daemon.metrics`.  Exit codes: 0 after a clean stop, 78 (EX_CONFIG) for a bad
configuration, 73 (EX_CANTCREAT) when the state or output directory cannot be used, 75
(:data:`EX_IN_USE`) when another process holds its lock (:mod:`pvsim.dirlock`), 70
(EX_SOFTWARE) for a bug.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pvsim import __version__, broker, metrics
from pvsim import config as c
from pvsim import log as pvlog
from pvsim.dirlock import DirectoryInUse
from pvsim.notify import Notifier
from pvsim.reconnect import ConnectionLost
from pvsim.session import Session
from pvsim.session_loop import SessionLoop
from pvsim.signals import Signals

if TYPE_CHECKING:
    from pvsim.metrics_endpoint import MetricsServer

EX_OK = 0
EX_SOFTWARE = 70
EX_CANTCREAT = 73
#: another daemon holds the directory's lock: sysexits' EX_TEMPFAIL (systemd shows
#: "75/TEMPFAIL") — it may be free later, but retrying at once cannot help, so the units
#: list it in RestartPreventExitStatus= and systemd does not loop on it
EX_IN_USE = 75
EX_CONFIG = c.EX_CONFIG

log = logging.getLogger("pvsim.lifecycle")


@dataclass(frozen=True, kw_only=True)
class LoggingSettings(c.Section):
    """The ``[logging]`` section of both daemons."""

    level: str = c.key(
        c.choice(*pvlog.LEVELS), "info", "`debug`, `info`, `warning` or `error`"
    )
    file: Path | None = c.key(
        c.optional(c.path), "", "also log to this file (for hosts without journald)"
    )


def check_config(daemon_cls: type[Daemon], config: c.Config) -> None:
    """The checks beyond single keys: the broker's security rules, then the daemon's own."""
    if "broker" in config.sections():
        broker.check(config)
    daemon_cls.check(config)


class StartupError(Exception):
    """The daemon cannot start for a reason outside the config file (e.g. a directory)."""

    def __init__(self, message: str, exit_code: int = EX_CANTCREAT):
        super().__init__(message)
        self.exit_code = exit_code


class Daemon(ABC):
    """One daemon's lifecycle (module docstring); subclasses fill in the steps.

    The broker side is the same for both: a :class:`~pvsim.session_loop.SessionLoop`
    (:attr:`sessions`) opens sessions with :meth:`open_session`, calls
    :meth:`on_session_open` for each and :meth:`on_session_lost` when one is lost."""

    name: ClassVar[str]
    schema: ClassVar[c.Schema]
    #: keys that a reload (SIGHUP) applies without a restart
    live_keys: ClassVar[frozenset[tuple[str, str]]] = frozenset({("logging", "level")})
    status_interval: ClassVar[float] = 1.0
    #: False: ready once open (meterd spools without a broker); True: once connected
    ready_needs_broker: ClassVar[bool] = True
    #: this daemon's own metrics (the shared ones come from :func:`pvsim.metrics.common`)
    metrics: ClassVar[tuple[metrics.Metric, ...]] = ()
    #: added to the WARNING when the metrics address cannot be used
    metrics_hint: ClassVar[str] = ""

    def __init__(
        self, config: c.Config, signals: Signals, notifier: Notifier, args: argparse.Namespace
    ):
        self.config = config
        self.signals = signals
        self.notifier = notifier
        self.args = args
        self.config_path = config.files[0]
        self._last_status = float("-inf")
        self.exporter: MetricsServer | None = None
        self.broker: broker.BrokerSettings = config.broker
        self.sessions: SessionLoop = SessionLoop(
            self.broker,
            signals.stop,
            idle=self.heartbeat,
            open_session=self.open_session,
            on_open=self.on_session_open,
            on_lost=self.on_session_lost,
        )

    # --- hooks -------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Extra command-line arguments of this daemon."""
        return None

    @classmethod
    def check(cls, config: c.Config) -> None:
        """Checks that span several keys; raise ConfigError."""
        return None

    @classmethod
    def describe_config(cls, config: c.Config) -> list[str]:
        """Lines ``--check-config`` prints after "configuration OK": what is in use."""
        return []

    @abstractmethod
    def open(self) -> None:
        """Open the local state (spool and sampler; output directory and journal);
        raise StartupError when that is impossible."""

    @abstractmethod
    def open_session(self, url: str) -> Session:
        """A new broker session on the node ``url``, connected and set up
        (:meth:`Session.connect`); raise BrokerUnavailable."""

    def on_session_open(self, session: Session) -> None:
        """A session was opened (after a reconnect too)."""
        return None

    def on_session_lost(self, exc: ConnectionLost) -> None:
        """A session was lost: forget what only it knew."""
        return None

    @abstractmethod
    def drain(self) -> None:
        """Finish in-flight work (flush, acknowledge, publish what is pending)."""

    @abstractmethod
    def close(self) -> None:
        """Release the local state; called even when an earlier step failed."""

    def status(self) -> str:
        return "running"

    def metric_values(self) -> dict[str, metrics.Value]:
        """The values of :attr:`metrics` now (called in the metrics thread: read, never
        change, the daemon's state)."""
        return {}

    @classmethod
    def all_metrics(cls) -> tuple[metrics.Metric, ...]:
        """Every metric the daemon exposes, as the README lists them."""
        return metrics.common(cls.name) + cls.metrics

    def _metric_values(self) -> dict[str, metrics.Value]:
        sessions = self.sessions
        values = metrics.common_values(self.name, sessions.connected, sessions.reconnects)
        values.update(self.metric_values())
        return values

    def apply(self, config: c.Config) -> None:
        """Apply the live keys of a reloaded config (the logging level by default)."""
        pvlog.set_level(config.logging.level)

    # --- shared behaviour --------------------------------------------------------------

    def heartbeat(self) -> None:
        """Called often from the daemon's loop: watchdog, reload, status."""
        self.notifier.watchdog()
        if self.signals.reload.is_set():
            self.signals.reload.clear()
            if not self.signals.stop.is_set():  # stopping: a reload would only delay it
                self.reload()
        now = time.monotonic()
        if now - self._last_status >= self.status_interval:
            self._last_status = now
            self.notifier.status(self.status())

    def reload(self) -> None:
        self.notifier.reloading()
        try:
            new = c.load(self.config_path, self.schema)
            check_config(type(self), new)
        except c.ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            self.notifier.ready(self.status())
            return
        for section, key, _option in c.describe(self.schema):
            if self.config.get(section, key) == new.get(section, key):
                continue
            if (section, key) in self.live_keys:
                log.info("reload: [%s] %s changed, applied", section, key)
            else:
                log.warning(
                    "reload: [%s] %s changed, but takes effect only after a restart", section, key
                )
        self.apply(new)
        for section, key in self.live_keys:
            applied = replace(getattr(self.config, section), **{key: new.get(section, key)})
            self.config = replace(self.config, **{section: applied})
        log.info("configuration reloaded from %s", ", ".join(map(str, new.files)))
        self.notifier.ready(self.status())

    def _ready(self) -> None:
        self.notifier.ready(self.status())
        log.info("ready: %s", self.status())

    def _serve_metrics(self) -> MetricsServer | None:
        """The Prometheus endpoint, when ``[metrics] listen`` is set; prometheus_client
        is imported only then (a small box that turns metrics off saves its memory)."""
        listen = self.config.metrics.listen
        if listen is None:
            return None
        from pvsim import metrics_endpoint

        collector = metrics_endpoint.Collector(self.all_metrics(), self._metric_values)
        return metrics_endpoint.serve(listen, collector, self.name, self.metrics_hint)

    def serve(self) -> None:
        """open → connect → ready → run → drain → stop (meterd: ready before connect)."""
        try:
            self.open()  # its directory lock first: a second daemon stops here (exit 75)
            self.exporter = self._serve_metrics()
            if not self.ready_needs_broker:
                self._ready()
            if self.sessions.connect():
                if self.ready_needs_broker:
                    self._ready()
                self.sessions.run()
            self.notifier.stopping()
            log.info("stopping: draining")
            self.drain()
        finally:
            self.notifier.stopping()  # (sent once: a failure skips the one above)
            try:
                self.sessions.close()
            finally:
                try:
                    self.close()
                finally:
                    if self.exporter is not None:
                        self.exporter.close()
        log.info("stopped")


def _fatal(line: str) -> None:
    """One error line on stderr, before logging is set up; at priority err in the journal."""
    prefix = f"<{pvlog.syslog_priority(logging.ERROR)}>" if pvlog.stderr_is_journal() else ""
    print(prefix + line, file=sys.stderr)


def main(daemon_cls: type[Daemon], argv: Sequence[str] | None = None) -> int:
    """Command-line entry point shared by both daemons; returns the exit code."""
    name = daemon_cls.name
    parser = argparse.ArgumentParser(prog=name, description=(daemon_cls.__doc__ or "").strip())
    parser.add_argument(
        "--config",
        default=f"/etc/{name}/{name}.ini",
        help="main config file; drop-ins in <file>.d/*.ini (default: %(default)s)",
    )
    parser.add_argument(
        "--check-config", action="store_true", help="validate the config and exit (0 or 78)"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    daemon_cls.add_arguments(parser)
    args = parser.parse_args(argv)

    try:
        config = c.load(args.config, daemon_cls.schema)
        check_config(daemon_cls, config)
    except c.ConfigError as exc:
        _fatal(f"{name}: {exc}")
        return EX_CONFIG
    if args.check_config:
        print(f"{name}: configuration OK ({', '.join(map(str, config.files))})")
        for line in daemon_cls.describe_config(config):
            print(f"{name}: {line}")
        return EX_OK

    # Before anything starts: a stop or reload asked for while starting up is kept for
    # the loops (SIGINT never raises KeyboardInterrupt in the middle of something).
    signals = Signals()
    signals.install()
    try:
        pvlog.setup(config.logging.level, config.logging.file)
    except OSError as exc:
        _fatal(f"{name}: cannot open log file: {exc}")
        return EX_CANTCREAT
    if "broker" in config.sections():
        for line in broker.warnings(config):
            log.warning("%s", line)
    notifier = Notifier()
    try:
        daemon = daemon_cls(config, signals, notifier, args)
        daemon.serve()
    except c.ConfigError as exc:
        log.error("%s", exc)
        return EX_CONFIG
    except StartupError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except DirectoryInUse as exc:
        log.error("%s", exc)
        return EX_IN_USE
    except Exception:
        log.critical("%s stopped by a bug; please report this traceback", name, exc_info=True)
        return EX_SOFTWARE
    finally:
        signals.finished()  # what comes now is moot, and must not kill the exit
    return EX_OK
