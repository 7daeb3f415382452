"""Validation tier: the PV model against pvlib (a test-only dependency, PyPI phase only)."""
