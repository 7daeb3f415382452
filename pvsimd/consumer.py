"""The consuming session: declare the queues, bind, and deliver messages to a handler.

Steps after the exchange (see :mod:`pvsim.session`): [declare_hash_exchange →
bind_hash_exchange, with shards] → declare_dead_letter_queue → declare_queue →
bind_queue → set_qos → select_confirms → start_consuming → ready.

With shards the queue consumed is the shard's, which has a single active consumer: a
second pvsimd consuming it is a standby, whose deliveries begin when the active one's
consumer goes away.  A consumer the broker cancels (its queue deleted) ends the session.

Acknowledgements are manual: :meth:`ack_upto` (multiple=True) after the rows are
flushed.  An invalid message is republished to the dead-letter queue with the reason in
its headers (:meth:`dead_letter`, with a publisher confirm) and acknowledged with the next
batch once that is confirmed.  Both queues are quorum queues: the readings queue counts
deliveries, and a message delivered more than ``delivery_limit`` times (one that keeps
failing) is dead-lettered by the broker itself, reason ``delivery_limit`` in x-death.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pika import data as amqp_data
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from pvsim.broker import BrokerSettings
from pvsim.session import Session
from pvsim.topology import REASON_HEADER, ROUTING_KEY_HEADER, USER_ID_HEADER, Topology

log = logging.getLogger("pvsimd.consumer")

# pika's on_message_callback: (channel, method, properties, body)
Handler = Callable[[Channel, Basic.Deliver, BasicProperties, bytes], None]


class Consumer(Session):
    """The consuming session: declares the topology, consumes with manual
    acknowledgements, and republishes invalid messages as confirmed dead letters
    (module docstring)."""

    def __init__(
        self,
        settings: BrokerSettings,
        topology: Topology,
        prefetch: int,
        handler: Handler,
        tick: Callable[[], None],
        tick_interval: float = 0.1,
        *,
        on_dead_letter_confirmed: Callable[[int, bool, bool], None],
        stop: threading.Event | None = None,
    ):
        super().__init__(settings, f"pvsimd {topology.consumed}", tick, tick_interval, stop)
        self.topology = topology
        self.prefetch = prefetch
        self.handler = handler
        self.on_dead_letter_confirmed = on_dead_letter_confirmed
        self.consumer_tag: str | None = None
        self.depth: int | None = None  # readings waiting in the queue, last we asked
        self._publish_tag = 0

    def setup_channel(self) -> None:
        if self.topology.hash_exchange is not None:
            self.declare_hash_exchange()
        else:
            self.declare_dead_letter_queue()

    def declare_hash_exchange(self) -> None:
        exchange = self.topology.hash_exchange
        self.channel.exchange_declare(
            exchange=exchange.name,
            exchange_type=exchange.type,
            durable=exchange.durable,
            callback=self.on_hash_exchange_declared,
        )

    def on_hash_exchange_declared(self, _frame: object) -> None:
        self.bind_hash_exchange()

    def bind_hash_exchange(self) -> None:
        binding = self.topology.exchange_binding
        self.channel.exchange_bind(
            destination=binding.queue,
            source=binding.exchange,
            routing_key=binding.routing_key,
            callback=self.on_hash_exchange_bound,
        )

    def on_hash_exchange_bound(self, _frame: object) -> None:
        self.declare_dead_letter_queue()

    def declare_dead_letter_queue(self) -> None:
        queue = self.topology.dead_letters
        self.channel.queue_declare(
            queue=queue.name,
            durable=queue.durable,
            arguments=queue.arguments,
            callback=self.on_dead_letter_queue_declared,
        )

    def on_dead_letter_queue_declared(self, _frame: object) -> None:
        self.declare_queue()

    def declare_queue(self) -> None:
        queue = self.topology.readings
        self.channel.queue_declare(
            queue=queue.name,
            durable=queue.durable,
            arguments=queue.arguments,
            callback=self.on_queue_declared,
        )

    def on_queue_declared(self, _frame: object) -> None:
        self.bind_queue()

    def bind_queue(self) -> None:
        binding = self.topology.binding
        self.channel.queue_bind(
            queue=binding.queue,
            exchange=binding.exchange,
            routing_key=binding.routing_key,
            callback=self.on_queue_bound,
        )

    def on_queue_bound(self, _frame: object) -> None:
        self.set_qos()

    def set_qos(self) -> None:
        self.channel.basic_qos(prefetch_count=self.prefetch, callback=self.on_qos_set)

    def on_qos_set(self, _frame: object) -> None:
        self.select_confirms()

    def select_confirms(self) -> None:
        self.channel.confirm_delivery(
            ack_nack_callback=self.on_publish_confirmed, callback=self.on_confirms_selected
        )

    def on_confirms_selected(self, _frame: object) -> None:
        self.start_consuming()

    def start_consuming(self) -> None:
        self.channel.add_on_cancel_callback(self.on_consumer_cancelled)
        self.consumer_tag = self.channel.basic_consume(
            queue=self.topology.consumed, on_message_callback=self.handler, auto_ack=False
        )
        self.ready()

    def on_consumer_cancelled(self, _frame: object) -> None:
        """The broker cancelled our consumer (say its queue was deleted)."""
        if not self._closing:
            self.fail(f"the broker cancelled consuming from {self.topology.consumed}")

    # --- acknowledgements and shutdown -------------------------------------------------

    def ack_upto(self, delivery_tag: int) -> None:
        if self.channel is not None and self.channel.is_open:
            self.channel.basic_ack(delivery_tag=delivery_tag, multiple=True)

    def dead_letter(
        self, body: bytes, props: BasicProperties, routing_key: str, reason: str
    ) -> int | None:
        """Republish a message to the dead-letter queue; returns its publish tag (None
        when the channel is gone: the session is ending, and the broker redelivers the
        message to the next one)."""
        if self.channel is None or not self.channel.is_open:
            return None
        headers = dict(props.headers or {}) if isinstance(props.headers, dict) else {}
        if not _encodable(headers):
            # e.g. pika 1.2 decodes a header of -2**63 as 2**63 and cannot encode it back
            headers = {str(k): repr(v) for k, v in headers.items()}
        headers[REASON_HEADER] = reason
        headers[ROUTING_KEY_HEADER] = routing_key
        if props.user_id:
            # pvsimd may not republish with another user's user_id (the broker closes
            # the channel): the sender goes into a header instead
            headers[USER_ID_HEADER] = props.user_id
        dead = BasicProperties(
            content_type=props.content_type,
            content_encoding=props.content_encoding,
            headers=headers,
            delivery_mode=2,
            message_id=props.message_id,
            timestamp=props.timestamp,
            app_id=props.app_id,
        )
        self.channel.basic_publish("", self.topology.dead_letter_queue, body, dead)
        self._publish_tag += 1
        return self._publish_tag

    def on_publish_confirmed(self, frame: object) -> None:
        method = frame.method
        self.on_dead_letter_confirmed(
            method.delivery_tag, method.multiple, isinstance(method, Basic.Ack)
        )

    def check_depth(self) -> None:
        """Ask the broker how many readings wait in the queue (see :attr:`depth`)."""
        if self.channel is not None and self.channel.is_open and not self._closing:
            self.channel.queue_declare(
                self.topology.consumed, passive=True, callback=self.on_depth
            )

    def on_depth(self, frame: object) -> None:
        self.depth = frame.method.message_count

    def cancel(self) -> None:
        """Stop deliveries; the loop pauses once the broker confirms."""
        if self.channel is None or not self.channel.is_open or self.consumer_tag is None:
            self.pause()
            return
        self.channel.basic_cancel(self.consumer_tag, callback=self.on_cancelled)

    def on_cancelled(self, _frame: object) -> None:
        self.pause()


def _encodable(headers: dict) -> bool:
    try:
        amqp_data.encode_table([], headers)
    except Exception:  # noqa: BLE001 - any failure means: do not send these as they are
        return False
    return True
