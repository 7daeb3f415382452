"""The broker topology of pvsim: the readings exchange, pvsimd's queues and the binding.

One owner for the names, types and arguments that pvsimd declares at every start, that
``pvsim-broker-setup`` provisions (and writes as definitions JSON) and that meterd
publishes to, so the three can never disagree (a queue declared with other arguments
than it has makes the broker refuse the declaration with PRECONDITION_FAILED).

    exchange (durable topic) ──reading.*──► queue (quorum, delivery limit)
                                               └─ dead letters ─► dead-letter queue (quorum)

Both queues are quorum queues: in RabbitMQ 3.10 only they count redeliveries and honour
``x-delivery-limit`` (what stops a poison message from looping), and they keep their
messages in a Raft log synced before the publisher confirm.  A message delivered more
than ``delivery_limit`` times is dead-lettered by the broker itself through the default
exchange; invalid messages are republished there by pvsimd (:data:`REASON_HEADER`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pvsim import wire

DEFAULT_EXCHANGE = "meter.readings"
DEFAULT_QUEUE = "pvsimd.readings"
DEFAULT_DEAD_LETTER_QUEUE = "pvsimd.readings.invalid"
DEFAULT_DELIVERY_LIMIT = 20

#: the binding of the readings queue: every meter's routing key ``reading.<meter_id>``
BINDING_KEY = wire.ROUTING_PREFIX + "*"

# headers of a message pvsimd dead-letters itself
REASON_HEADER = "x-pvsim-reason"
ROUTING_KEY_HEADER = "x-pvsim-routing-key"
USER_ID_HEADER = "x-pvsim-user-id"  # the original sender: the broker checks user_id


@dataclass(frozen=True)
class Exchange:
    """An exchange to declare."""

    name: str
    type: str = "topic"
    durable: bool = True


@dataclass(frozen=True)
class Queue:
    """A queue to declare, with its arguments."""

    name: str
    arguments: dict[str, Any]
    durable: bool = True


@dataclass(frozen=True)
class Binding:
    """A binding of a queue to an exchange."""

    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True)
class Topology:
    """What pvsimd declares (and ``pvsim-broker-setup`` provisions), in declaration order:
    the exchange, the dead-letter queue, the readings queue, the binding."""

    exchange: str = DEFAULT_EXCHANGE
    queue: str = DEFAULT_QUEUE
    dead_letter_queue: str = DEFAULT_DEAD_LETTER_QUEUE
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT

    @property
    def readings_exchange(self) -> Exchange:
        return Exchange(self.exchange)

    @property
    def dead_letters(self) -> Queue:
        return Queue(self.dead_letter_queue, {"x-queue-type": "quorum"})

    @property
    def readings(self) -> Queue:
        """The readings queue: quorum, with a delivery limit and the dead-letter queue."""
        return Queue(
            self.queue,
            {
                "x-queue-type": "quorum",
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.dead_letter_queue,
            },
        )

    @property
    def queues(self) -> tuple[Queue, ...]:
        return (self.dead_letters, self.readings)

    @property
    def binding(self) -> Binding:
        return Binding(self.exchange, self.queue, BINDING_KEY)
