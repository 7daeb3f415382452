"""The raw-publisher baselines: the same bodies and properties as meterd (persistent,
mandatory, message_id, user_id), no publisher confirms.

* ``blocking``: pika BlockingConnection, basic_publish in a loop;
* ``select``: pika SelectConnection (meterd's own I/O machinery), basic_publish in
  chunks of 1000 from the I/O loop, so writes overlap with publishing.

Prints one JSON line: start (before the first publish), published (the last publish
returned; for ``select`` also the output buffer written out), cpu seconds in between.
The caller times the queue depth.

    python -m bench.worker_publish blocking|select URL EXCHANGE METER_ID BODIES_FILE
"""

from __future__ import annotations

import json
import sys
import time

import pika

from bench.common import meterd_properties
from pvsim import wire


def main() -> int:
    mode, url, exchange, meter, bodies_file = sys.argv[1:6]
    records = []
    with open(bodies_file, "rb") as fh:
        for line in fh:
            seq, body = line.rstrip(b"\n").split(b" ", 1)
            records.append((int(seq), body))
    routing_key = wire.routing_key(meter)
    params = pika.URLParameters(url)
    user = params.credentials.username

    def props(seq: int) -> pika.BasicProperties:
        return meterd_properties(meter, seq, user)

    out = (blocking if mode == "blocking" else select)(
        params, exchange, routing_key, records, props
    )
    print(json.dumps(out))
    return 0


def blocking(params, exchange, routing_key, records, props) -> dict:  # noqa: ANN001
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    start = time.time()
    cpu0 = time.process_time()
    for seq, body in records:
        ch.basic_publish(exchange, routing_key, body, props(seq), mandatory=True)
    published = time.time()
    cpu1 = time.process_time()
    conn.close()
    return {"start": start, "published": published, "cpu": cpu1 - cpu0}


def select(params, exchange, routing_key, records, props) -> dict:  # noqa: ANN001
    state: dict[str, float] = {}
    chunk = 1000

    def publish_from(ch, i: int) -> None:  # noqa: ANN001
        for seq, body in records[i : i + chunk]:
            ch.basic_publish(exchange, routing_key, body, props(seq), mandatory=True)
        if i + chunk < len(records):
            conn.ioloop.add_callback_threadsafe(lambda: publish_from(ch, i + chunk))
        else:
            conn.ioloop.add_callback_threadsafe(lambda: wait_written())

    def wait_written() -> None:
        transport = getattr(conn, "_transport", None)  # pika internals, 1.2 to 1.4
        if transport is not None and transport.get_write_buffer_size() > 0:
            conn.ioloop.call_later(0.001, wait_written)
            return
        state["published"] = time.time()
        state["cpu1"] = time.process_time()
        conn.close()

    def on_channel(ch) -> None:  # noqa: ANN001
        state["start"] = time.time()
        state["cpu0"] = time.process_time()
        publish_from(ch, 0)

    conn = pika.SelectConnection(
        params,
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_close_callback=lambda _c, _r: conn.ioloop.stop(),
    )
    conn.ioloop.start()
    return {
        "start": state["start"],
        "published": state["published"],
        "cpu": state["cpu1"] - state["cpu0"],
    }


if __name__ == "__main__":
    sys.exit(main())
