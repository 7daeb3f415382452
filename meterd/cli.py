"""The ``meterd`` command."""

from __future__ import annotations

from collections.abc import Sequence

from meterd.service import MeterDaemon
from pvsim.lifecycle import main as run_main


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(MeterDaemon, argv)
