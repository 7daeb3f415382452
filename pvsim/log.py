"""Logging set-up: journald-friendly under systemd, timestamped lines in a terminal.

Under systemd (``JOURNAL_STREAM`` names our stderr) every line starts with its syslog
priority, ``<3>`` for errors to ``<7>`` for debug, so ``journalctl -p warning`` filters
correctly, and carries no timestamp of its own (the journal adds one).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error")

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def syslog_priority(levelno: int) -> int:
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class JournalFormatter(logging.Formatter):
    """``<priority>name: message``; each further line of a traceback (bugs only) is
    indented and carries the priority too: journald makes every line an entry of its own,
    and a line without a prefix would be logged at the default level (info)."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return prefix + super().format(record).replace("\n", f"\n{prefix}  ")


def stderr_is_journal(stream: TextIO = sys.stderr) -> bool:
    """True when stderr is the journal stream systemd gave us (see systemd.exec(5))."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup(level: str = "info", log_file: Path | None = None, stream: TextIO | None = None) -> None:
    """Configure the root logger once; call again (e.g. on reload) to change the level."""
    stream = stream or sys.stderr
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handler = logging.StreamHandler(stream)
    if stderr_is_journal(stream):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if log_file is not None:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        root.addHandler(file_handler)
    set_level(level)
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # we report connection trouble ourselves


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
