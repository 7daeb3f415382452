"""The consuming session: declare the queue, bind it, and deliver messages to a handler.

Steps after the exchange (see :mod:`pvsim.session`): declare_queue → bind_queue →
set_qos → start_consuming → ready.  Acknowledgements are manual and explicit:
:meth:`ack_upto` (multiple=True) after the rows are flushed, :meth:`reject` for bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from pvsim import wire
from pvsim.broker import BrokerSettings
from pvsim.session import Session

log = logging.getLogger("pvsimd.consumer")

BINDING_KEY = wire.ROUTING_PREFIX + "*"

Handler = Callable[[Basic.Deliver, BasicProperties, bytes], None]


def queue_arguments() -> dict[str, object]:
    """Quorum queue: replicated-ready, durable, and it counts deliveries (poison limit)."""
    return {"x-queue-type": "quorum"}


class Consumer(Session):
    def __init__(
        self,
        settings: BrokerSettings,
        queue: str,
        prefetch: int,
        handler: Handler,
        tick: Callable[[], None],
        tick_interval: float = 0.1,
    ):
        super().__init__(settings, f"pvsimd {queue}", tick, tick_interval)
        self.queue = queue
        self.prefetch = prefetch
        self.handler = handler
        self.consumer_tag: str | None = None
        self.cancelled = False

    def setup_channel(self) -> None:
        self.declare_queue()

    def declare_queue(self) -> None:
        self.channel.queue_declare(
            queue=self.queue,
            durable=True,
            arguments=queue_arguments(),
            callback=self.on_queue_declared,
        )

    def on_queue_declared(self, _frame: object) -> None:
        self.bind_queue()

    def bind_queue(self) -> None:
        self.channel.queue_bind(
            queue=self.queue,
            exchange=self.settings.exchange,
            routing_key=BINDING_KEY,
            callback=self.on_queue_bound,
        )

    def on_queue_bound(self, _frame: object) -> None:
        self.set_qos()

    def set_qos(self) -> None:
        self.channel.basic_qos(prefetch_count=self.prefetch, callback=self.on_qos_set)

    def on_qos_set(self, _frame: object) -> None:
        self.start_consuming()

    def start_consuming(self) -> None:
        self.consumer_tag = self.channel.basic_consume(
            queue=self.queue, on_message_callback=self.on_message, auto_ack=False
        )
        self.ready()

    def on_message(
        self, _channel: Channel, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        self.handler(method, props, body)

    # --- acknowledgements and shutdown -------------------------------------------------

    def ack_upto(self, delivery_tag: int) -> None:
        if self.channel is not None and self.channel.is_open:
            self.channel.basic_ack(delivery_tag=delivery_tag, multiple=True)

    def reject(self, delivery_tag: int) -> None:
        if self.channel is not None and self.channel.is_open:
            self.channel.basic_reject(delivery_tag=delivery_tag, requeue=False)

    def cancel(self) -> None:
        """Stop deliveries; the loop pauses once the broker confirms."""
        if self.channel is None or not self.channel.is_open or self.consumer_tag is None:
            self.pause()
            return
        self.channel.basic_cancel(self.consumer_tag, callback=self.on_cancelled)

    def on_cancelled(self, _frame: object) -> None:
        self.cancelled = True
        self.pause()
