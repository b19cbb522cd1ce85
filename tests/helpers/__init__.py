"""Helpers shared by the tests of every area: paths and required tools, free ports, servers
on loopback, Redis servers, the test PKI, metrics scraping, small model checkpoints.

Fixtures live in the conftest files and build on these; a test module imports from here,
never from another directory's conftest.
"""
