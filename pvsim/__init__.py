"""Shared code of the pvsim daemons: wire format, broker settings and daemon plumbing."""

__version__ = "0.3.0"
