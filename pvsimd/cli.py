"""The ``pvsimd`` command: ``pvsimd report ...`` reports a day (pvsimd/report.py);
anything else runs the daemon."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pvsim.lifecycle import main as run_main
from pvsimd.service import PvSimDaemon


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["report"]:
        from pvsimd import report

        return report.main(args[1:])
    return run_main(PvSimDaemon, argv)
