"""The scripts a user runs first (scripts/demo, scripts/ensure-rabbitmq), from the clone,
in a real terminal, against the real broker on this machine.  (The same on a fresh
Debian 12 without network, RabbitMQ installed by the demo itself: tests/system/
test_newcomer.py.)"""

from __future__ import annotations

import pytest

from tests.support.daemons import require_local_broker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def local_broker() -> str:
    return require_local_broker()
