"""What the fault and cluster tiers keep of their runs, for docs/reliability.md: each
test's outcome and time, whether the whole tier ran (only then is its section written),
the versions the tier ran on, and the daemons' log tails for a failure message."""

from __future__ import annotations

import ast
import importlib.metadata
import platform
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from tests.support.wait import wait_until


class Run(Protocol):
    nodeid: str
    seconds: float
    outcome: str


def record(run: Run, report: object) -> None:
    """One phase's report (setup, call, teardown) of the run's test, from the
    ``pytest_runtest_makereport`` hook."""
    run.seconds += report.duration
    if report.failed:
        run.outcome = "failed" if report.when == "call" else f"error ({report.when})"
    elif report.when == "call" and run.outcome == "not run":
        run.outcome = "passed"


def tier_tests(directory: Path) -> set[str]:
    """Every test function of a tier's directory, found in the source (not in the
    collection, which ``-k`` narrows), as ``file::name``."""
    names = set()
    for path in sorted(directory.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                names.add(f"{path.name}::{node.name}")
    return names


def missing(directory: Path, runs: list[Run]) -> set[str]:
    """The tier's tests that did not run: its section is written only when none."""
    ran = set()
    for run in runs:
        path, name = run.nodeid.split("::", 1)
        ran.add(f"{Path(path).name}::{name}")
    return tier_tests(directory) - ran


def versions() -> str:
    """Python's, pika's and tenacity's versions, as the section names them."""

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    return (
        f"Python {platform.python_version()}, pika {version('pika')}, "
        f"tenacity {version('tenacity')}"
    )


def tails(logs: Mapping[str, str], lines: int, suffix: str = "") -> str:
    """The last lines of each daemon's log, for a failure message (``suffix`` after each
    name: ``.log`` where the names are the log files')."""
    return "\n".join(
        f"--- {name}{suffix} (last {lines} lines)\n" + "\n".join(text.splitlines()[-lines:])
        for name, text in logs.items()
    )


def wait_showing_logs(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    logs: Callable[[], Mapping[str, str]],
    lines: int,
    suffix: str = "",
) -> object:
    """:func:`wait_until`, with the daemons' log tails in the failure message."""
    try:
        return wait_until(predicate, timeout=timeout, interval=0.05, message=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{tails(logs(), lines, suffix)}") from None
