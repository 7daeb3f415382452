"""max_open_files against the process's descriptor limit (RLIMIT_NOFILE), for real: each
case runs in a child process started with the limits under test."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROBE = (
    "import json, logging, resource\n"
    "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
    "from pvsimd.open_files import descriptor_budget\n"
    "budget = descriptor_budget({max_open})\n"
    "print(json.dumps([budget, resource.getrlimit(resource.RLIMIT_NOFILE)[0]]))\n"
)


def probe(max_open: int, soft: int, hard: int) -> tuple[int, int, str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(max_open=max_open)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=limit,  # noqa: PLW1509 - the limits under test, in the child only
        timeout=60,
        check=True,
    )
    budget, soft_after = json.loads(proc.stdout)
    return budget, soft_after, proc.stderr


def current_hard() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def test_fits_as_it_is():
    assert probe(256, 1024, 1024)[:2] == (256, 1024)


def test_soft_limit_is_raised_towards_the_hard_one():
    if current_hard() < 4096:
        pytest.fail("this test needs a hard RLIMIT_NOFILE of at least 4096")
    budget, soft, err = probe(2000, 1024, 4096)
    assert (budget, soft) == (2000, 2064)
    assert err == ""


def test_too_many_for_the_hard_limit_is_lowered_with_a_warning():
    budget, soft, err = probe(16384, 512, 1024)
    assert (budget, soft) == (1024 - 64, 1024)
    assert "max_open_files = 16384 does not fit the descriptor limit 1024; using 960" in err
    assert "LimitNOFILE=" in err
