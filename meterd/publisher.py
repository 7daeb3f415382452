"""Publishing spooled readings with publisher confirms, pipelined.

Up to ``window`` readings are in flight at once; a reading leaves the spool only when the
broker confirms it.  Messages are mandatory: a reading no queue would take comes back,
and the session is ended so that the reconnect loop retries it later instead of the broker
dropping it.  A nack ends the session the same way.  Either way the next session
republishes from the oldest unconfirmed reading; pvsimd drops the repeats.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

import pika

from meterd.spool import Spool
from pvsim import wire
from pvsim.broker import BrokerSettings
from pvsim.session import Session

log = logging.getLogger("meterd.publisher")


class Publisher(Session):
    """The publishing session: sends the spool's readings oldest first, up to ``window``
    unconfirmed, and moves the spool's confirmed mark as the broker confirms (module
    docstring)."""

    # The exchange must exist (pvsimd or pvsim-broker-setup declares it): a passive
    # declare needs no configure permission, so a meter's broker user can have none.
    passive_exchange = True

    def __init__(
        self,
        settings: BrokerSettings,
        meter_id: str,
        spool: Spool,
        window: int,
        tick: Callable[[], None],
        on_confirmed: Callable[[int], None] = lambda _n: None,
        tick_interval: float = 0.1,
        on_published: Callable[[int], None] = lambda _n: None,
        stop: threading.Event | None = None,
    ):
        super().__init__(settings, f"meterd {meter_id}", tick, tick_interval, stop)
        self.meter_id = meter_id
        self.routing_key = wire.routing_key(meter_id)
        self.spool = spool
        self.window = window
        self.on_confirmed = on_confirmed
        self.on_published = on_published
        self._next_seq = spool.confirmed + 1
        self._next_tag = 1
        self._in_flight: deque[list] = deque()  # [delivery tag, seq, confirmed]
        self._returned = False

    # --- setup steps -------------------------------------------------------------------

    def setup_channel(self) -> None:
        self.channel.add_on_return_callback(self.on_return)
        self.channel.confirm_delivery(
            ack_nack_callback=self.on_delivery_confirmation, callback=self.on_confirm_selected
        )

    def on_confirm_selected(self, _frame: object) -> None:
        self.ready()

    # --- publishing --------------------------------------------------------------------

    def publish_pending(self) -> None:
        if not self.is_ready or self.channel is None or self._returned or self._closing:
            return
        room = self.window - len(self._in_flight)
        if room <= 0:
            return
        self._next_seq = max(self._next_seq, self.spool.confirmed + 1)
        records = self.spool.records_from(self._next_seq, room)
        for seq, body in records:
            self.channel.basic_publish(
                exchange=self.settings.exchange,
                routing_key=self.routing_key,
                body=body,
                properties=pika.BasicProperties(
                    content_type=wire.CONTENT_TYPE,
                    delivery_mode=2,
                    message_id=f"{self.meter_id}:{seq}",
                    app_id="meterd",
                    # checked by the broker (it must be the connection's user), so
                    # pvsimd's [security] verify_sender can trust it
                    user_id=self.settings.username,
                ),
                mandatory=True,
            )
            self._in_flight.append([self._next_tag, seq, False])
            self._next_tag += 1
            self._next_seq = seq + 1
        if records:
            self.on_published(len(records))

    def on_return(self, _channel: object, method: object, _props: object, _body: bytes) -> None:
        if not self._returned:
            self._returned = True
            self.fail(
                f"readings for {method.routing_key} are unroutable ({method.reply_text}): "
                f"no queue is bound to exchange {self.settings.exchange!r}; "
                "they stay in the spool"
            )

    def on_delivery_confirmation(self, frame: pika.frame.Method) -> None:
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            self._returned = True
            self.fail("the broker refused readings (nack); they stay in the spool")
            return
        if self._returned or not self._in_flight:
            return
        tag = method.delivery_tag
        first_tag = self._in_flight[0][0]
        if method.multiple:
            for entry in self._in_flight:
                if entry[0] > tag:
                    break
                entry[2] = True
        elif first_tag <= tag < first_tag + len(self._in_flight):
            self._in_flight[tag - first_tag][2] = True
        upto = None
        while self._in_flight and self._in_flight[0][2]:
            upto = self._in_flight.popleft()[1]
        if upto is not None:
            before = self.spool.backlog
            self.spool.confirm(upto)
            self.on_confirmed(before - self.spool.backlog)
            self.publish_pending()
