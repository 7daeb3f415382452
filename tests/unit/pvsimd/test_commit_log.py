"""The commit log: writes wait for a sync that began after them; a failed sync hands back
every unsynced write, per file from its oldest size, rows oldest first."""

from __future__ import annotations

from pvsimd.commit_log import CommitLog


def test_a_sync_covers_the_generations_handed_out_before_it():
    log = CommitLog()
    g1 = log.next_generation()
    log.written(g1, [("a", 0, ["r1"])])
    g2 = log.next_generation()
    log.written(g2, [("b", 10, ["r2"])])
    log.synced(g1)
    assert log.unsynced and log.unsynced_writes == 1
    log.synced(g2)
    assert not log.unsynced


def test_an_empty_write_waits_for_nothing():
    log = CommitLog()
    log.written(log.next_generation(), [])
    assert not log.unsynced


def test_a_failed_sync_gives_each_file_its_oldest_size_and_all_its_rows():
    log = CommitLog()
    log.written(log.next_generation(), [("a", 0, ["a1"]), ("b", 5, ["b1"])])
    log.written(log.next_generation(), [("a", 30, ["a2", "a3"])])
    assert sorted(log.roll_back()) == [("a", 0, ["a1", "a2", "a3"]), ("b", 5, ["b1"])]
    assert not log.unsynced and log.roll_back() == []
