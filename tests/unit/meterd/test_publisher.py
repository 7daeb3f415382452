"""meterd's publisher without a broker: what it publishes from the spool, and how the
broker's confirms (multiple, out of order), nacks and returns move the spool."""

from __future__ import annotations

import json

import pika
import pytest

from meterd.publisher import Publisher
from meterd.spool import Spool
from pvsim.broker import BrokerSettings


class FakeChannel:
    """Records basic_publish; its delivery tags count from 1 as a confirming channel's."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, bytes, pika.BasicProperties, bool]] = []
        self.is_open = True

    def basic_publish(self, exchange, routing_key, body, properties, mandatory):  # noqa: ANN001
        self.published.append((exchange, routing_key, body, properties, mandatory))

    def seqs(self) -> list[int]:
        return [json.loads(body)["seq"] for _x, _k, body, _p, _m in self.published]


def settings(user: str = "house-a") -> BrokerSettings:
    return BrokerSettings(
        url=f"amqp://{user}@localhost/%2F",
        exchange="meter.readings",
        heartbeat=30,
        connect_timeout=10,
        blocked_timeout=60,
        retry_initial=1,
        retry_max=30,
    )


@pytest.fixture
def spool(tmp_path):
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.open()
    yield spool
    spool.close()


def record(spool: Spool, n: int) -> None:
    for _ in range(n):
        spool.append(lambda seq: json.dumps({"seq": seq}).encode())


def publisher(spool: Spool, window: int = 100) -> tuple[Publisher, FakeChannel, list[int]]:
    confirmed: list[int] = []
    p = Publisher(settings(), "house-a", spool, window, tick=lambda: None,
                  on_confirmed=confirmed.append)  # fmt: skip
    channel = FakeChannel()
    p.channel = channel
    p.is_ready = True
    return p, channel, confirmed


def confirm(p: Publisher, tag: int, multiple: bool = False, ack: bool = True) -> None:
    method = (pika.spec.Basic.Ack if ack else pika.spec.Basic.Nack)(
        delivery_tag=tag, multiple=multiple
    )
    p.on_delivery_confirmation(pika.frame.Method(1, method))


def test_readings_are_published_oldest_first_as_mandatory_with_the_senders_user(spool):
    record(spool, 3)
    p, channel, _ = publisher(spool)
    p.publish_pending()
    assert channel.seqs() == [0, 1, 2]
    exchange, key, _body, props, mandatory = channel.published[0]
    assert (exchange, key, mandatory) == ("meter.readings", "reading.house-a", True)
    assert (props.message_id, props.user_id, props.delivery_mode) == ("house-a:0", "house-a", 2)


def test_no_more_than_the_window_is_in_flight(spool):
    record(spool, 5)
    p, channel, confirmed = publisher(spool, window=2)
    p.publish_pending()
    assert channel.seqs() == [0, 1]
    confirm(p, 1)  # room for one more
    assert channel.seqs() == [0, 1, 2]
    assert confirmed == [1] and spool.confirmed == 0


def test_a_multiple_confirm_covers_every_tag_up_to_it(spool):
    record(spool, 4)
    p, _channel, confirmed = publisher(spool)
    p.publish_pending()
    confirm(p, 3, multiple=True)
    assert spool.confirmed == 2 and spool.backlog == 1 and confirmed == [3]


def test_out_of_order_confirms_leave_the_spool_only_in_order(spool):
    record(spool, 3)
    p, _channel, confirmed = publisher(spool)
    p.publish_pending()
    confirm(p, 2)  # seq 1 is confirmed, but seq 0 is not yet
    assert spool.confirmed == -1 and spool.backlog == 3
    confirm(p, 3)
    assert spool.backlog == 3
    confirm(p, 1)  # now 0, 1 and 2 leave together
    assert spool.confirmed == 2 and spool.backlog == 0 and confirmed == [3]


def test_a_nack_ends_the_session_and_keeps_the_readings(spool):
    record(spool, 2)
    p, channel, confirmed = publisher(spool)
    p.publish_pending()
    confirm(p, 1, ack=False)
    assert p._failure == "the broker refused readings (nack); they stay in the spool"
    confirm(p, 2)  # anything after the nack is ignored: the next session republishes
    assert spool.backlog == 2 and confirmed == []
    record(spool, 1)
    p.publish_pending()  # nothing more on this session
    assert channel.seqs() == [0, 1]


def test_a_returned_reading_ends_the_session_and_stays_in_the_spool(spool):
    record(spool, 2)
    p, channel, confirmed = publisher(spool)
    p.publish_pending()
    returned = pika.spec.Basic.Return(
        reply_code=312, reply_text="NO_ROUTE", exchange="meter.readings",
        routing_key="reading.house-a",
    )  # fmt: skip
    p.on_return(channel, returned, pika.BasicProperties(), b"")
    assert "unroutable (NO_ROUTE)" in p._failure and "stay in the spool" in p._failure
    confirm(p, 2, multiple=True)  # the broker still confirms a returned message
    assert spool.backlog == 2 and confirmed == []


def test_a_new_session_starts_from_the_oldest_unconfirmed(spool):
    record(spool, 3)
    first, _channel, _ = publisher(spool)
    first.publish_pending()
    confirm(first, 1)
    second, channel, _ = publisher(spool)  # the first was lost with 1 and 2 in flight
    second.publish_pending()
    assert channel.seqs() == [1, 2]
