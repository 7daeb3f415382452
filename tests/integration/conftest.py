"""Integration tier: both daemons as real processes against a real RabbitMQ.

The broker on 127.0.0.1:5672 must be up (scripts/test starts it); a test that cannot
reach it fails rather than skips.
"""

from __future__ import annotations

import pytest

from tests.support.daemons import Site, require_local_broker
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def local_broker() -> str:
    return require_local_broker()


@pytest.fixture
def site(tmp_path, local_broker):
    s = Site(root=tmp_path, broker_url=local_broker)
    yield s
    s.cleanup()


@pytest.fixture
def proxy(local_broker):
    p = TcpProxy("127.0.0.1", 5672).start()
    yield p
    p.close()
