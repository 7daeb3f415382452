"""Logging: syslog priorities and no timestamp under systemd, timestamps in a terminal."""

from __future__ import annotations

import logging
import os
import re

import pytest

from pvsim import log as pvlog

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
log = logging.getLogger("pvsim.test")


@pytest.fixture(autouse=True)
def restore_logging():
    """setup() replaces the root logger's handlers; give them back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    pika_level = logging.getLogger("pika").level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("pika").setLevel(pika_level)


@pytest.fixture
def stream(tmp_path):
    with open(tmp_path / "stderr.txt", "w+", encoding="utf-8") as fh:
        yield fh


def as_journal(monkeypatch, stream) -> None:
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")


def lines(stream) -> list[str]:
    stream.flush()
    stream.seek(0)
    return stream.read().splitlines()


def log_all_levels() -> None:
    log.debug("debug message")
    log.info("info message")
    log.warning("warning message")
    log.error("error message")


def test_under_systemd_lines_start_with_syslog_priority(monkeypatch, stream):
    as_journal(monkeypatch, stream)
    pvlog.setup("debug", stream=stream)
    log_all_levels()
    assert lines(stream) == [
        "<7>pvsim.test: debug message",
        "<6>pvsim.test: info message",
        "<4>pvsim.test: warning message",
        "<3>pvsim.test: error message",
    ]


def test_under_systemd_lines_carry_no_timestamp(monkeypatch, stream):
    as_journal(monkeypatch, stream)
    pvlog.setup("info", stream=stream)
    log.warning("disk is slow")
    (line,) = lines(stream)
    assert not TIMESTAMP.search(line)
    assert "WARNING" not in line


def test_under_systemd_every_line_of_a_traceback_keeps_the_priority(monkeypatch, stream):
    as_journal(monkeypatch, stream)
    pvlog.setup("info", stream=stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.critical("stopped by a bug", exc_info=True)
    out = lines(stream)
    assert len(out) > 2
    assert out[0] == "<2>pvsim.test: stopped by a bug"
    assert all(line.startswith("<2>") for line in out), out
    assert any("RuntimeError: boom" in line for line in out)


def test_without_systemd_lines_carry_timestamp_and_level(monkeypatch, stream):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    pvlog.setup("debug", stream=stream)
    log_all_levels()
    out = lines(stream)
    assert len(out) == 4
    for line, level in zip(out, ["DEBUG", "INFO", "WARNING", "ERROR"], strict=True):
        assert TIMESTAMP.match(line), line
        assert f" {level} pvsim.test: " in line
        assert not line.startswith("<")


def test_journal_stream_of_another_file_is_not_the_journal(monkeypatch, stream, tmp_path):
    other = tmp_path / "other"
    other.write_text("")
    st = os.stat(other)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    pvlog.setup("info", stream=stream)
    log.info("hello")
    (line,) = lines(stream)
    assert TIMESTAMP.match(line)


@pytest.mark.parametrize("value", ["", "garbage", "1:2:3", "a:b"])
def test_malformed_journal_stream_is_not_the_journal(monkeypatch, stream, value):
    monkeypatch.setenv("JOURNAL_STREAM", value)
    assert pvlog.stderr_is_journal(stream) is False


def test_stream_without_file_descriptor_is_not_the_journal(monkeypatch):
    import io

    monkeypatch.setenv("JOURNAL_STREAM", "1:1")
    assert pvlog.stderr_is_journal(io.StringIO()) is False


def test_level_filters_less_severe_messages(monkeypatch, stream):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    pvlog.setup("warning", stream=stream)
    log_all_levels()
    out = lines(stream)
    assert [line.split(" ")[2] for line in out] == ["WARNING", "ERROR"]


def test_set_level_changes_the_level(monkeypatch, stream):
    as_journal(monkeypatch, stream)
    pvlog.setup("info", stream=stream)
    log.debug("hidden")
    pvlog.set_level("debug")
    log.debug("shown")
    pvlog.set_level("error")
    log.warning("hidden too")
    log.error("shown too")
    assert lines(stream) == ["<7>pvsim.test: shown", "<3>pvsim.test: shown too"]


def test_setup_again_replaces_the_handler(monkeypatch, stream):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    pvlog.setup("info", stream=stream)
    pvlog.setup("info", stream=stream)
    log.info("once")
    assert len(lines(stream)) == 1


def test_log_file_gets_timestamped_lines_too(monkeypatch, stream, tmp_path):
    as_journal(monkeypatch, stream)
    pvlog.setup("info", log_file=tmp_path / "daemon.log", stream=stream)
    log.warning("to both")
    logging.getLogger().handlers[-1].flush()
    (file_line,) = (tmp_path / "daemon.log").read_text().splitlines()
    assert TIMESTAMP.match(file_line) and " WARNING pvsim.test: to both" in file_line
    assert lines(stream) == ["<4>pvsim.test: to both"]


@pytest.mark.parametrize(
    ("levelno", "priority"),
    [
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
        (logging.DEBUG, 7),
        (5, 7),
    ],
)
def test_syslog_priority(levelno, priority):
    assert pvlog.syslog_priority(levelno) == priority
