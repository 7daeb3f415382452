"""pvsimd's STATUS line: the count of today's rows follows the site's calendar day."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pika
from freezegun import freeze_time

from pvsim import config as c
from pvsim import wire
from pvsim.notify import Notifier
from pvsim.signals import Signals
from pvsimd.service import PvSimDaemon
from pvsimd.settings import SCHEMA


def daemon(tmp_path) -> PvSimDaemon:
    ini = tmp_path / "pvsimd.ini"
    ini.write_text(
        "[site]\nlatitude = 52.5\nlongitude = 13.4\ntimezone = Europe/Berlin\n"
        f"[output]\ndirectory = {tmp_path / 'csv'}\nfsync = off\n"
        "[security]\nverify_sender = no\n"
    )
    return PvSimDaemon(c.load(ini, SCHEMA), Signals(), Notifier(), argparse.Namespace())


def deliver(d: PvSimDaemon, tag: int, ts: datetime) -> None:
    reading = wire.Reading("house-a", ts, 100.0, tag)
    method = pika.spec.Basic.Deliver(delivery_tag=tag, routing_key=wire.routing_key("house-a"))
    d.handle(None, method, pika.BasicProperties(), wire.encode(reading))


def test_rows_today_restart_at_the_sites_midnight(tmp_path):
    with freeze_time("2026-11-24T22:50:00Z") as clock:  # 23:50 in Berlin
        d = daemon(tmp_path)
        deliver(d, 1, datetime(2026, 11, 24, 22, 49, 50, tzinfo=UTC))
        deliver(d, 2, datetime(2026, 11, 24, 22, 50, 0, tzinfo=UTC))
        assert "2 rows today, 2 since start" in d.status()
        clock.move_to("2026-11-24T23:00:05Z")  # 00:00:05 in Berlin: a new day
        d._tick()  # the I/O loop's tick (no broker session: only the clock is looked at)
        assert "0 rows today, 2 since start" in d.status()
        deliver(d, 3, datetime(2026, 11, 24, 23, 0, 0, tzinfo=UTC))
        deliver(d, 4, datetime(2026, 11, 24, 22, 59, 50, tzinfo=UTC))  # late, yesterday's
        assert "1 rows today, 4 since start" in d.status()
        d.files.discard_buffered()
        d.files.close()
