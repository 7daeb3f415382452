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

On a cluster a quorum queue is replicated: its Raft group has up to three nodes of the
cluster when it is declared (RabbitMQ 3.10's ``quorum_cluster_size``), unless
``replicas`` says how many (``x-quorum-initial-group-size``).  That argument is
declared only when set, so with nothing configured the arguments stay what they always
were: a queue re-declared with other arguments than it has fails with
PRECONDITION_FAILED, and an existing installation must not need a migration.

Shards (``shards`` > 1) put a consistent-hash exchange (``x-consistent-hash``, from the
``rabbitmq_consistent_hash_exchange`` plugin) behind the topic exchange, bound to one
quorum queue per shard, each with a single active consumer::

    exchange (topic) ──reading.*──► <queue>.shards (x-consistent-hash) ──"1"──► <queue>.0
                                                                       ──"1"──► <queue>.1 ...

The hash is taken of the routing key, ``reading.<meter_id>``: one meter's readings go to
one shard while the ring stays the same; the wire format and the routing key do not
change.  Each pvsimd declares the exchanges, the exchange-to-exchange binding, the
dead-letter queue and its own shard's queue and binding (weight 1); adding shard K is
starting a pvsimd with ``shard = K``.  With ``shards = 1`` (the default) the layout is
the one above, unchanged.
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
#: the exchange type of the shards, and the plugin that provides it
HASH_EXCHANGE_TYPE = "x-consistent-hash"
HASH_PLUGIN = "rabbitmq_consistent_hash_exchange"
#: every shard queue's binding to the hash exchange: its weight, one bucket
SHARD_WEIGHT = "1"

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
    """A binding of a queue (or, ``to_exchange``, of an exchange) to an exchange."""

    exchange: str
    queue: str
    routing_key: str
    to_exchange: bool = False


@dataclass(frozen=True)
class Topology:
    """What one pvsimd declares (and ``pvsim-broker-setup`` provisions), in declaration
    order: the exchange, the hash exchange and its binding (shards only), the
    dead-letter queue, the readings queue (its shard's), the binding."""

    exchange: str = DEFAULT_EXCHANGE
    queue: str = DEFAULT_QUEUE
    dead_letter_queue: str = DEFAULT_DEAD_LETTER_QUEUE
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    replicas: int | None = None  # x-quorum-initial-group-size; None: not declared
    shards: int = 1
    shard: int = 0  # the shard this pvsimd consumes

    def __post_init__(self) -> None:
        if not 0 <= self.shard < self.shards:
            raise ValueError(f"shard {self.shard} is not one of 0..{self.shards - 1}")

    @property
    def sharded(self) -> bool:
        return self.shards > 1

    @property
    def readings_exchange(self) -> Exchange:
        return Exchange(self.exchange)

    @property
    def hash_exchange(self) -> Exchange | None:
        """The consistent-hash exchange of the shards (None unsharded)."""
        if not self.sharded:
            return None
        return Exchange(f"{self.queue}.shards", HASH_EXCHANGE_TYPE)

    @property
    def exchange_binding(self) -> Binding | None:
        """The hash exchange bound to the topic exchange (None unsharded)."""
        if self.hash_exchange is None:
            return None
        return Binding(self.exchange, self.hash_exchange.name, BINDING_KEY, to_exchange=True)

    def _quorum(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"x-queue-type": "quorum"}
        if self.replicas is not None:
            arguments["x-quorum-initial-group-size"] = self.replicas
        return arguments

    @property
    def dead_letters(self) -> Queue:
        return Queue(self.dead_letter_queue, self._quorum())

    def shard_queue(self, shard: int) -> str:
        """The name of shard ``shard``'s queue (sharded), ``<queue>.<shard>``."""
        return f"{self.queue}.{shard}"

    @property
    def consumed(self) -> str:
        """The queue this pvsimd consumes: ``queue``, or its shard's."""
        return self.shard_queue(self.shard) if self.sharded else self.queue

    def readings_queue(self, shard: int) -> Queue:
        """A readings queue: quorum, with a delivery limit and the dead-letter queue; a
        shard's also with a single active consumer (a second pvsimd is a standby)."""
        arguments = self._quorum()
        arguments.update(
            {
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.dead_letter_queue,
            }
        )
        if not self.sharded:
            return Queue(self.queue, arguments)
        arguments["x-single-active-consumer"] = True
        return Queue(self.shard_queue(shard), arguments)

    @property
    def readings(self) -> Queue:
        """The readings queue this pvsimd consumes."""
        return self.readings_queue(self.shard)

    @property
    def queues(self) -> tuple[Queue, ...]:
        return (self.dead_letters, self.readings)

    def queue_binding(self, shard: int) -> Binding:
        """A readings queue's binding: to the topic exchange, or a shard's to the hash
        exchange with weight 1."""
        if self.hash_exchange is None:
            return Binding(self.exchange, self.queue, BINDING_KEY)
        return Binding(self.hash_exchange.name, self.shard_queue(shard), SHARD_WEIGHT)

    @property
    def binding(self) -> Binding:
        return self.queue_binding(self.shard)
