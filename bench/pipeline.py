"""What each step of pvsimd's per-reading work costs in CPU, in-process (no broker, no
disk): a micro-benchmark to put numbers on the profile (not a daemon benchmark).

Steps timed, per reading, over readings shaped like the drain benchmark's (10 000
meters on a 10 s grid):

* ``json.loads``            the bare parse (what the raw consumer does)
* ``wire.decode_with``      parse + validation (the gate of pvsimd), with the reading's
                            moment from the per-reading context (a cached timestamp)
* ``routing_key``           the routing-key check (``reading.routing_key`` built)
* ``senders.forged``        [security] verify_sender
* ``moment (miss)``         the per-reading context computed: local day and time text,
                            PV power (each reading its own timestamp)
* ``format_row``            the CSV row

    PYTHONPATH=. python3 -m bench.pipeline [--code DIR] [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, help="tree holding pvsim/ and pvsimd/ (default: this)")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    if a.code:
        sys.path.insert(0, str(a.code))
    from pvsim import wire
    from pvsimd import csv_format
    from pvsimd.moments import Moments
    from pvsimd.pv_model import PvSystem
    from pvsimd.senders import SenderCheck, parse_sender_map

    tz = ZoneInfo("Europe/Berlin")
    base = datetime(2025, 6, 21, 8, 0, tzinfo=UTC)
    meters = 10_000
    bodies = []
    for k in range(a.n):
        r, i = divmod(k, meters)
        m = f"bench-m{i:05d}"
        bodies.append(
            wire.encode(
                wire.Reading(m, base + timedelta(seconds=10 * r), ((i * 7919) % 90000) / 10, r)
            )
        )
    readings = [wire.decode(b) for b in bodies]
    keys = [wire.routing_key(rd.meter_id) for rd in readings]
    senders = SenderCheck(
        parse_sender_map(" ".join(f"guest:bench-m{i:05d}" for i in range(meters)))
    )
    site = {"latitude": 52.52, "longitude": 13.405, "altitude": 0}
    pv_cfg = {
        "peak_power_w": 4000,
        "dc_ac_ratio": 1.2,
        "tilt": 30,
        "azimuth": 180,
        "losses": 14,
        "clearsky": "ineichen",
        "linke_turbidity": 3,
        "albedo": 0.2,
        "ambient_temperature": 20,
        "clouds": "off",
        "seed": 0,
    }
    pv = PvSystem.from_config(site, pv_cfg)
    miss_ts = [base + timedelta(milliseconds=7 * k) for k in range(a.n)]

    def t_loads():
        loads = json.loads
        for b in bodies:
            loads(b)

    moments = Moments(tz, pv.power_w)

    def t_decode():
        dec, at = wire.decode_with, moments.at
        for b in bodies:
            dec(b, at)

    def t_routing():
        for rd, k in zip(readings, keys, strict=True):
            if k != rd.routing_key:
                raise AssertionError

    def t_senders():
        for rd in readings:
            senders.forged("guest", rd.meter_id)

    def t_moment_miss():
        fresh = Moments(tz, PvSystem.from_config(site, pv_cfg).power_w)
        for ts in miss_ts:
            fresh.of(ts)

    def t_format():
        fr = csv_format.format_row
        for rd in readings:
            fr("2025-06-21T10:00:00+02:00", rd.meter_id, rd.power_w, 1234.5, rd.seq)

    steps = [
        ("json.loads", t_loads),
        ("wire.decode_with", t_decode),
        ("routing_key", t_routing),
        ("senders.forged", t_senders),
        ("moment (miss)", t_moment_miss),
        ("format_row", t_format),
    ]
    print(f"per reading, best of {a.repeat} × {a.n} readings (µs):")
    for name, fn in steps:
        best = float("inf")
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        print(f"  {name:20s} {best / a.n * 1e6:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
