"""The steady-state load generator: M meters on an interval grid, R readings/s.

Meter i's reading of round n has ts = the start of round n on the interval grid (as
meterd stamps its drift-free ticks, so meters share timestamps and pvsimd's
per-timestamp context works as in the field), seq n, and is published at
start + (n*M + i)/R: the meters' publishes spread evenly over the interval, paced by the
monotonic clock.  With
``--ts now`` each reading is stamped with the current time instead (every timestamp
distinct: pvsimd's per-timestamp context never hits).

For every ``sample_every``-th meter the wall-clock time (time.time()) just before
basic_publish is recorded; they are written as JSON {"meter:seq": t} to OUT at the end.
Prints one JSON line: start, end, published, lag (the largest delay behind schedule).

    python -m bench.worker_loadgen URL EXCHANGE METERS RATE DURATION SAMPLE_EVERY OUT [now]
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

import pika

from pvsim import wire


def meter_id(i: int) -> str:
    return f"bench-m{i:05d}"


def main() -> int:
    url, exchange = sys.argv[1], sys.argv[2]
    meters, rate, duration = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    sample_every, out_path = int(sys.argv[6]), sys.argv[7]
    ts_now = len(sys.argv) > 8 and sys.argv[8] == "now"
    params = pika.URLParameters(url)
    user = params.credentials.username
    interval = meters / rate
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ids = [meter_id(i) for i in range(meters)]
    keys = [wire.routing_key(m) for m in ids]
    total = int(rate * duration)
    sent: dict[str, float] = {}
    start_wall = time.time()
    grid0 = (start_wall // interval) * interval
    m0 = time.monotonic()
    k = 0
    lag = 0.0
    while k < total:
        now = time.monotonic()
        due = min(total, int((now - m0) * rate) + 1)
        if due > k + 1:
            lag = max(lag, (due - 1 - k) / rate)
        while k < due:
            n, i = divmod(k, meters)
            meter = ids[i]
            if ts_now:
                ts = datetime.fromtimestamp(round(time.time(), 3), UTC)
            else:
                ts = datetime.fromtimestamp(grid0 + n * interval, UTC)
            body = wire.encode(wire.Reading(meter, ts, float((i * 37 + n * 11) % 9000), n))
            props = pika.BasicProperties(
                content_type=wire.CONTENT_TYPE,
                delivery_mode=2,
                message_id=f"{meter}:{n}",
                app_id="meterd",
                user_id=user,
            )
            if i % sample_every == 0:
                sent[f"{meter}:{n}"] = time.time()
            ch.basic_publish(exchange, keys[i], body, props)
            k += 1
        next_due = m0 + (k / rate)
        conn.sleep(max(0.0, min(0.005, next_due - time.monotonic())))
    end = time.time()
    conn.close()
    with open(out_path, "w") as fh:
        json.dump(sent, fh)
    print(json.dumps({"start": start_wall, "end": end, "published": k, "lag": lag}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
