"""Benchmarks of meterd and pvsimd, each side by side with a raw pika baseline.

Not part of the pass/fail tests (pytest collects tests/ only).  Run from the root of a
clone::

    PYTHONPATH=. /usr/bin/python3 -m bench            # full run, median of 3 (~9 min)
    PYTHONPATH=. /usr/bin/python3 -m bench --quick    # smoke run (~2 min)
    PYTHONPATH=. /usr/bin/python3 -m bench --help

See docs/performance.md for what each benchmark measures and the figures.
"""
