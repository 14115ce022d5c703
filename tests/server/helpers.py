"""Small client-side helpers for the server tests: SSE events off the wire, metric values."""
from __future__ import annotations

import asyncio
import re
import time

import aiohttp

from clients.sse import ServerSentEvent, SSEDecoder


async def read_events(response: aiohttp.ClientResponse) -> list[ServerSentEvent]:
    """Every event of a text/event-stream response, parsed by the WHATWG rules."""
    decoder, events = SSEDecoder(), []
    async for chunk in response.content.iter_any():
        events += decoder.feed(chunk)
    return events + decoder.close()


async def next_event(response: aiohttp.ClientResponse, decoder: SSEDecoder,
                     pending: list[ServerSentEvent]) -> ServerSentEvent:
    """The next event of a stream being read a bit at a time (pending: events already parsed)."""
    while not pending:
        chunk = await response.content.readany()
        if not chunk:
            raise EOFError("the stream ended")
        pending += decoder.feed(chunk)
    return pending.pop(0)


def joined_text(events: list[ServerSentEvent]) -> str:
    return "".join(e.data for e in events if e.event == "message")


async def metric(http: aiohttp.ClientSession, url: str, name: str, labels: str = "") -> float:
    """One sample of /metrics, e.g. metric(http, url, "takeoff_kv_slots_in_use")."""
    async with http.get(url + "/metrics") as response:
        text = await response.text()
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def wait_for_metric(http, url: str, name: str, expected: float, timeout_s: float = 10.0,
                          labels: str = "") -> float:
    """Poll until the metric has the expected value (or the deadline passes); returns the last
    value seen, for the caller to assert on."""
    deadline = time.monotonic() + timeout_s
    value = await metric(http, url, name, labels)
    while value != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        value = await metric(http, url, name, labels)
    return value


def assert_api_error(status: int, body: dict, expected_status: int, param: str | None = "") -> None:
    """The contract's error shape; `param` checked unless left as ''."""
    assert status == expected_status, body
    error = body["error"]
    assert set(error) == {"message", "type", "param"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    if param != "":
        assert error["param"] == param, body
