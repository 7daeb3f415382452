"""The raw-consumer baseline: a minimal pika SelectConnection consumer.

Same prefetch as pvsimd, parses each body as JSON, acknowledges in batches of the size
pvsimd uses (multiple=True, ``pvsimd.service.ack_batch``), writes nothing.  Prints one
JSON line: start (basic_consume sent), end (last ack sent), cpu seconds in between.

    python -m bench.worker_consume URL QUEUE COUNT PREFETCH ACK_EVERY
"""

from __future__ import annotations

import json
import sys
import time

import pika


def main() -> int:
    url, queue = sys.argv[1], sys.argv[2]
    count, prefetch, ack_every = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    state: dict[str, float] = {"n": 0}
    loads = json.loads

    def on_message(ch, method, _props, body) -> None:  # noqa: ANN001
        loads(body)
        n = state["n"] = state["n"] + 1
        if n % ack_every == 0 or n == count:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if n == count:
            state["end"] = time.time()
            state["cpu1"] = time.process_time()
            conn.close()

    def start(ch) -> None:  # noqa: ANN001
        state["start"] = time.time()
        state["cpu0"] = time.process_time()
        ch.basic_consume(queue, on_message, auto_ack=False)

    def on_channel(ch) -> None:  # noqa: ANN001
        ch.basic_qos(prefetch_count=prefetch, callback=lambda _f: start(ch))

    def on_closed(_conn, _reason) -> None:  # noqa: ANN001
        conn.ioloop.stop()

    conn = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_open_error_callback=lambda _c, e: (
            print(f"open error {e}", file=sys.stderr),
            conn.ioloop.stop(),
        ),
        on_close_callback=on_closed,
    )
    conn.ioloop.start()
    if state["n"] != count:
        print(f"consumed {state['n']} of {count}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {"start": state["start"], "end": state["end"], "cpu": state["cpu1"] - state["cpu0"]}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
