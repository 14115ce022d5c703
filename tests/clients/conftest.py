"""The real-server fixtures of tests/server, shared with the client tests."""
from tests.server.conftest import server_factory, server_url  # noqa: F401
