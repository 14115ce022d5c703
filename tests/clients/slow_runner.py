"""Helpers of the client tests."""
from __future__ import annotations

from tests.runners import slow_runner  # noqa: F401 - re-exported for the client tests


async def metric(session, server_url: str, name: str, labels: str = "") -> float:
    """The value of one sample in the server's /metrics (0 when it has not been recorded yet)."""
    async with session.get(server_url + "/metrics") as response:
        text = await response.text()
    prefix = name + (f"{{{labels}}}" if labels else "")
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[-1])
    return 0.0
