"""A sync that fails (EIO from syncfs or the journal's fdatasync) while pvsimd runs
against the real broker: the unsynced rows are rolled back and written again, nothing is
acknowledged before it is on disk, and every reading still ends in exactly one row.

pvsimd runs in this process (its sync thread included) so that ``durable.syncfs`` can be
made to fail; everything else is real: the broker, the connection, the files.
"""

from __future__ import annotations

import argparse
import errno
import logging
import threading

from pvsim import config as c
from pvsim import durable
from pvsim.notify import Notifier
from pvsim.signals import Signals
from pvsimd.journal import Journal
from pvsimd.service import PvSimDaemon
from pvsimd.settings import SCHEMA
from tests.support.daemons import publish_readings, queue_depth
from tests.support.wait import wait_until

METERS = 20
ROUNDS = 30


def test_failed_syncs_are_rolled_back_and_rewritten_once(site, monkeypatch, caplog):
    calls = {"n": 0, "failed": 0, "journal": 0}

    def flaky(real, kind=""):  # noqa: ANN001, ANN202 - every sync counts: day files or journal
        def sync(*args: object) -> None:
            calls["n"] += 1
            if kind:
                calls[kind] += 1
            if calls["n"] in (2, 3, 7):  # a few failures, two of them in a row
                calls["failed"] += 1
                raise OSError(errno.EIO, "Input/output error")
            real(*args)

        return sync

    monkeypatch.setattr(durable, "syncfs", flaky(durable.syncfs))
    monkeypatch.setattr(Journal, "sync", flaky(Journal.sync, "journal"))
    config = c.load(site.pvsimd_config(broker={"prefetch": 50}), SCHEMA)
    signals = Signals()
    daemon = PvSimDaemon(config, signals, Notifier(), argparse.Namespace())
    assert daemon.files.fsync == "batch"
    caplog.set_level(logging.INFO)
    runner = threading.Thread(target=daemon.serve, name="pvsimd-under-test")
    runner.start()
    try:
        wait_until(lambda: daemon.consumer is not None, timeout=20, message="pvsimd consuming")
        sent = publish_readings(site.broker_url, site.exchange, METERS, ROUNDS)

        def all_rows() -> bool:
            return sum(len(site.rows(f"m{m}")) for m in range(METERS)) >= len(sent)

        wait_until(all_rows, timeout=60, message="every reading in a row")
    finally:
        signals.stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert calls["failed"] == 3 and calls["n"] > 7
    assert calls["journal"] > 0  # backlog commits (12 deliveries each) went to the journal
    for m in range(METERS):
        rows = site.rows(f"m{m}")
        assert [int(r["seq"]) for r in rows] == list(range(ROUNDS)), f"m{m}"
    text = caplog.text
    assert "syncing" in text and "rolling back" in text
    assert "cannot write CSV files" in text and "writable again" in text
    # stopped: whatever it had not acknowledged would be back in the queue
    assert queue_depth(site.broker_url, site.queue) == 0
    assert queue_depth(site.broker_url, site.dead_letter_queue) == 0
