"""The alerting rules of docs/prometheus/ pass their own tests under promtool (from
Debian's prometheus package, which scripts/install-deps installs), and alert on metrics
the daemons expose."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from meterd.service import MeterDaemon
from pvsimd.service import PvSimDaemon

RULES = Path(__file__).resolve().parents[2] / "docs" / "prometheus"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool missing: run scripts/install-deps (Debian package prometheus)")
    return path


def test_the_rules_pass_their_tests():
    proc = subprocess.run(
        [promtool(), "test", "rules", "pvsim-rules.test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_test_and_uses_only_metrics_that_exist():
    rules = (RULES / "pvsim-rules.yml").read_text()
    tests = (RULES / "pvsim-rules.test.yml").read_text()
    alerts = re.findall(r"^\s+- alert: (\w+)$", rules, re.M)
    assert alerts and all(f"alertname: {a}\n" in tests for a in alerts)
    exposed = {m.name for m in MeterDaemon.all_metrics() + PvSimDaemon.all_metrics()}
    used = set(re.findall(r"\b((?:meterd|pvsimd)_[a-z_]+)", rules))
    assert used and used <= exposed, used - exposed
