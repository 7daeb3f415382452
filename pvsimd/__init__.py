"""pvsimd: consumes meter readings, adds simulated PV power, writes one CSV per meter per day."""
