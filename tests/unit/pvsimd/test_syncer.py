"""The sync thread: merged requests, results in order, errors reported, a clean stop."""

from __future__ import annotations

import errno
import threading

from pvsimd.syncer import Syncer
from tests.support.wait import wait_until


class GatedSync:
    """A sync that waits for the test to let it finish, counting its calls."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.calls = 0
        self.fail_on: set[int] = set()

    def __call__(self) -> None:
        self.calls += 1
        self.started.release()
        assert self.release.acquire(timeout=10)
        if self.calls in self.fail_on:
            raise OSError(errno.EIO, "Input/output error")


def test_requests_during_a_sync_are_merged_into_the_next():
    sync, woken = GatedSync(), []
    syncer: Syncer[int] = Syncer(sync, lambda: woken.append(1))
    try:
        syncer.request(1)
        assert sync.started.acquire(timeout=10)  # sync 1 runs
        syncer.request(2)
        syncer.request(3)
        assert syncer.busy
        sync.release.release()
        assert sync.started.acquire(timeout=10)  # one sync for 2 and 3
        sync.release.release()
        assert syncer.wait_idle(10)
        assert syncer.results() == [(1, None), (3, None)]
        assert sync.calls == 2
        assert len(woken) == 2
        assert not syncer.busy and syncer.results() == []
    finally:
        syncer.stop(10)


def test_a_failed_sync_is_reported_with_its_error_and_the_next_one_runs():
    sync = GatedSync()
    sync.fail_on = {1}
    syncer: Syncer[str] = Syncer(sync, lambda: None)
    try:
        syncer.request("a")
        assert sync.started.acquire(timeout=10)
        sync.release.release()
        wait_until(lambda: not syncer.busy, timeout=10, message="sync a done")
        syncer.request("b")
        assert sync.started.acquire(timeout=10)
        sync.release.release()
        assert syncer.wait_idle(10)
        (token_a, error_a), (token_b, error_b) = syncer.results()
        assert token_a == "a" and isinstance(error_a, OSError) and error_a.errno == errno.EIO
        assert (token_b, error_b) == ("b", None)
    finally:
        syncer.stop(10)


def test_stop_finishes_what_was_requested():
    done = []
    syncer: Syncer[int] = Syncer(lambda: done.append(1), lambda: None)
    syncer.request(7)
    syncer.stop(10)
    assert done == [1]
    assert syncer.results() == [(7, None)]


def test_a_wake_that_fails_loses_no_result():
    def wake() -> None:
        raise RuntimeError("the I/O loop is gone")

    syncer: Syncer[int] = Syncer(lambda: None, wake)
    try:
        syncer.request(1)
        assert syncer.wait_idle(10)
        assert syncer.results() == [(1, None)]
    finally:
        syncer.stop(10)
