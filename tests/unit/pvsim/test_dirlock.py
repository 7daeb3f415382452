"""The exclusive directory lock: one holder, named by pid; released by the kernel when the
holder dies, however it dies."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pvsim import dirlock
from pvsim.dirlock import DirectoryInUse, DirectoryLock


def _holder_process(directory) -> subprocess.Popen:
    """Another process that takes the lock and keeps it until killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from pvsim.dirlock import DirectoryLock
        DirectoryLock({str(directory)!r}, "x").acquire()
        print("locked", flush=True)
        time.sleep(600)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    assert proc.stdout.readline() == b"locked\n"
    return proc


def test_the_holder_writes_its_pid_and_a_second_lock_is_refused(tmp_path):
    first = DirectoryLock(tmp_path, "another pvsimd")
    first.acquire()
    assert first.held
    assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
    assert (tmp_path / ".lock").stat().st_mode & 0o777 == 0o640 & ~_umask()
    second = DirectoryLock(tmp_path, "another pvsimd")
    with pytest.raises(DirectoryInUse) as exc:
        second.acquire()  # flock: a second open file conflicts, even in the same process
    assert exc.value.pid == os.getpid()
    assert not second.held
    message = str(exc.value)
    assert message == (
        f"{tmp_path} is in use by process {os.getpid()}, another pvsimd "
        f"(it holds {tmp_path}/.lock); stop that one first"
    )
    assert "\n" not in message
    first.release()
    second.acquire()  # free again
    second.release()


def test_another_process_holds_it_until_it_is_killed(tmp_path):
    holder = _holder_process(tmp_path)
    try:
        with pytest.raises(DirectoryInUse) as exc:
            DirectoryLock(tmp_path, "x").acquire()
        assert exc.value.pid == holder.pid
        assert f"process {holder.pid}" in str(exc.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # no stale lock: the kernel released it with the process; the file stays
    with DirectoryLock(tmp_path, "x") as lock:
        assert lock.held
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
    assert not lock.held and (tmp_path / ".lock").exists()


def test_a_stale_pid_in_an_unlocked_file_does_not_count(tmp_path):
    (tmp_path / ".lock").write_text("999999999\n")
    with DirectoryLock(tmp_path, "x"):
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"


def test_a_holder_that_has_not_written_its_pid_yet(tmp_path, monkeypatch):
    monkeypatch.setattr(dirlock, "PID_WAIT_S", 0.05)
    with open(tmp_path / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # locked, still empty
        with pytest.raises(DirectoryInUse) as exc:
            DirectoryLock(tmp_path, "another pvsimd").acquire()
    assert exc.value.pid is None
    assert str(exc.value).startswith(f"{tmp_path} is in use by another process, another pvsimd")


def test_a_full_disk_does_not_stop_the_holder(tmp_path, monkeypatch):
    """Writing the pid is for the message only: ENOSPC still gives the lock."""
    (tmp_path / ".lock").write_text("4242\n")

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    monkeypatch.setattr(dirlock, "PID_WAIT_S", 0.05)
    with DirectoryLock(tmp_path, "x") as lock:
        assert lock.held
        with pytest.raises(DirectoryInUse) as exc:
            DirectoryLock(tmp_path, "x").acquire()
    assert exc.value.pid is None  # not the earlier holder's 4242


def test_a_missing_directory_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        DirectoryLock(tmp_path / "missing", "x").acquire()


def test_the_lock_is_not_inherited_by_children(tmp_path):
    with DirectoryLock(tmp_path, "x"):
        fds = subprocess.run(
            ["ls", "-l", "/proc/self/fd"], capture_output=True, text=True, check=True
        ).stdout
        assert ".lock" not in fds


def test_release_twice_and_acquire_twice_are_harmless(tmp_path):
    lock = DirectoryLock(tmp_path, "x")
    lock.acquire()
    lock.acquire()
    lock.release()
    lock.release()
    assert not lock.held


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_shared_holders_write_together_and_keep_an_exclusive_one_out(tmp_path):
    one = DirectoryLock(tmp_path, "x", shared=True)
    two = DirectoryLock(tmp_path, "x", shared=True)
    one.acquire()
    two.acquire()  # any number of shared holders
    alone = DirectoryLock(tmp_path, "another pvsimd")
    with pytest.raises(DirectoryInUse):
        alone.acquire()
    one.release()
    two.release()
    alone.acquire()
    with pytest.raises(DirectoryInUse):
        DirectoryLock(tmp_path, "a pvsimd without shards", shared=True).acquire()
    alone.release()
