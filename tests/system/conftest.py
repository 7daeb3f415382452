"""Fixtures of the system tests: the packages, the cached root; see helpers.py."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.package.debs import Debs, build_debs_once
from tests.system.container import log, root_cache, sweep_stale_workdirs
from tests.system.helpers import BROKER, FAILED_MODULES, TOOLS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        item.session.stash.setdefault(FAILED_MODULES, set()).add(item.module.__name__)


@pytest.fixture(scope="session")
def debs(tmp_path_factory) -> Debs:
    return build_debs_once(tmp_path_factory)


@pytest.fixture(scope="session")
def cached_root() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("the system tests boot containers and need root")
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.fail(f"tools missing: {missing}; run scripts/install-deps")
    with socket.socket() as s:
        s.settimeout(5)
        if s.connect_ex(BROKER) != 0:
            pytest.fail(f"no broker on {BROKER}; run scripts/ensure-rabbitmq")
    sweep_stale_workdirs()
    t0 = time.monotonic()
    with root_cache() as root:
        log(f"root cache ready in {time.monotonic() - t0:.1f}s: {root}")
        yield root
