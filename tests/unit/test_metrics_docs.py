"""Every metric is documented from its one declaration (pvsim/metrics.py and the
daemons' metrics.py): the README's tables are exactly the rows the declarations give
(name, type, labels, meaning), and each daemon's man page names exactly its metrics.
(That the daemons expose exactly the declared metrics: tests/unit/*/test_metrics.py,
and a real Prometheus in tests/integration/test_prometheus.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from meterd.service import MeterDaemon
from pvsim.metrics import Metric
from pvsimd.service import PvSimDaemon

REPO = Path(__file__).resolve().parents[2]
DAEMONS = {"meterd": MeterDaemon, "pvsimd": PvSimDaemon}


def metric_rows(metrics: Iterable[Metric]) -> list[str]:
    """The README table's rows, as the declarations give them."""
    return [
        f"| `{m.name}` | {m.type} | {', '.join(f'`{label}`' for label in m.labels)} | {m.doc} |"
        for m in metrics
    ]


def _readme_table(daemon: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    start = text.index(f"#### Metrics of {daemon}\n")
    end = text.index("\n#", start + 10)
    return [line for line in text[start:end].splitlines() if line.startswith("| `")]


@pytest.mark.parametrize("daemon", DAEMONS)
def test_readme_lists_exactly_the_declared_metrics(daemon):
    want = metric_rows(DAEMONS[daemon].all_metrics())
    got = _readme_table(daemon)
    assert got == want, "README metrics of {}; expected:\n{}".format(daemon, "\n".join(want))


@pytest.mark.parametrize("daemon", DAEMONS)
def test_man_page_names_exactly_the_declared_metrics(daemon):
    text = (REPO / "docs" / "man" / f"{daemon}.8").read_text()
    section = text[text.index(".SH METRICS\n") :]
    section = section[: section.index("\n.SH ", 1)]
    named = re.findall(r"^\.TP\n\.B (\w+)$", section, re.M)
    assert named == [m.name for m in DAEMONS[daemon].all_metrics()]


def test_every_metric_has_a_meaning_and_its_daemons_prefix():
    for name, daemon in DAEMONS.items():
        for m in daemon.all_metrics():
            assert m.doc and m.name.startswith(name + "_"), m
