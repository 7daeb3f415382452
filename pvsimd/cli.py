"""The ``pvsimd`` command."""

from __future__ import annotations

from collections.abc import Sequence

from pvsim.lifecycle import main as run_main
from pvsimd.service import PvSimDaemon


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PvSimDaemon, argv)
