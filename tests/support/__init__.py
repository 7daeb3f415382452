"""Helpers shared by the test suites: polling, a broker node of our own, a TCP proxy."""
