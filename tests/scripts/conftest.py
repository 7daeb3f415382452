"""The scripts a user runs first (scripts/demo, scripts/ensure-rabbitmq), from the clone,
in a real terminal, against the real broker on this machine.  (The same on a fresh
Debian 12 without network, RabbitMQ installed by the demo itself: tests/system/
test_newcomer.py.)"""

from __future__ import annotations

import pika
import pytest

from tests.support.daemons import LOCAL_BROKER

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def local_broker() -> str:
    try:
        pika.BlockingConnection(pika.URLParameters(LOCAL_BROKER)).close()
    except pika.exceptions.AMQPError as exc:
        pytest.fail(f"no RabbitMQ at {LOCAL_BROKER} ({exc!r}); run scripts/ensure-rabbitmq")
    return LOCAL_BROKER
