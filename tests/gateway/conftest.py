"""Fixtures for the gateway tests; the peers themselves are in peers.py."""

from .peers import redis_url, start_gateway, upstream  # noqa: F401 - pytest fixtures
