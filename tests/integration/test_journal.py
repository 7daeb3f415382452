"""A backlog goes through the journal: pvsimd killed (SIGKILL) while acknowledged rows
are in the journal and not yet in their day files writes them at its next start, and
every reading still ends in exactly one row."""

from __future__ import annotations

import pytest

from tests.support.daemons import publish_readings, queue_depth
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

METERS = 100
ROUNDS = 80


def test_rows_acknowledged_from_the_journal_survive_a_kill(site):
    pvsimd = site.start_pvsimd(broker={"prefetch": 200})  # commits every 50 deliveries
    wait_until(lambda: "ready:" in pvsimd.log(), timeout=30, message="pvsimd ready")
    assert pvsimd.stop() == 0
    sent = publish_readings(site.broker_url, site.exchange, METERS, ROUNDS)
    journal = site.output / ".journal"

    pvsimd = site.start_pvsimd(broker={"prefetch": 200})
    # acknowledged (gone from the queue) while the rows wait in the journal
    wait_until(
        lambda: (
            journal.exists()
            and journal.stat().st_size > 0
            and queue_depth(site.broker_url, site.queue) < len(sent) - 1000
        ),
        timeout=60,
        interval=0.01,
        message="acknowledged rows in the journal",
    )
    pvsimd.kill()
    in_journal = journal.read_bytes().count(b"\n")
    on_disk = sum(len(site.rows(f"m{m}")) for m in range(METERS))
    left = queue_depth(site.broker_url, site.queue)
    assert in_journal > 0
    assert on_disk < len(sent) - left  # some acknowledged readings are in the journal only

    pvsimd = site.start_pvsimd(broker={"prefetch": 200})
    wait_until(
        lambda: sum(len(site.rows(f"m{m}")) for m in range(METERS)) >= len(sent),
        timeout=60,
        message="every reading in a row",
    )
    wait_until(lambda: queue_depth(site.broker_url, site.queue) == 0, timeout=30)
    assert pvsimd.stop() == 0
    assert "rows of the last run written to their day files" in pvsimd.log()
    for m in range(METERS):
        assert site.seqs(f"m{m}") == list(range(ROUNDS)), f"m{m}"
    assert journal.read_bytes() == b""
    assert "Traceback" not in pvsimd.log()
