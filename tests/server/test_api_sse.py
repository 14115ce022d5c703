"""Every SSE endpoint aborts its requests when its client goes, even one that goes before the
first event is sent (the event generator then never runs, so only the response can abort).

The app runs in this test's event loop, driven over ASGI: the client's connection fails when the
answer starts, as an ASGI 2.4 server reports a peer that has gone (OSError on send)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest

from scheduler.request import Task
from takeoff.app import create_app
from takeoff.config import ServerConfig
from tests.runners import slow_runner
from tests.server.conftest import TEST_DEFAULTS

ENDPOINTS = {  # each asks for far more tokens than the test waits for
    "/generate_stream": {"text": "hello there", "max_new_tokens": 200},
    "/v1/completions": {"prompt": "hello there", "max_tokens": 200, "stream": True},
    "/v1/feedback/improve": {"text": "You never listen to anyone.", "stream": True},
}


async def post_and_vanish(app, path: str, body: dict) -> None:
    """POST `body`; the connection is gone by the time the answer starts."""
    incoming = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]
    gone = asyncio.Event()

    async def receive():
        if incoming:
            return incoming.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        await asyncio.sleep(0)
        if message["type"] == "http.response.start":
            gone.set()
            raise OSError("the client has gone")

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
             "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", TEST_DEFAULTS["port"])}
    with contextlib.suppress(OSError):  # as the server would, the app may pass it on
        await app(scope, receive, send)


async def settled(condition, timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return condition()


@pytest.mark.parametrize("path", list(ENDPOINTS))
async def test_a_client_gone_before_the_first_event_frees_its_slot(path, tiny_t5_dir,
                                                                  learned_classifier):
    config = ServerConfig(**dict(TEST_DEFAULTS, model=str(tiny_t5_dir),
                                 classifier=learned_classifier))
    app = create_app(config, runner_factory=slow_runner)
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        submitted = []
        submit = engine.submit
        engine.submit = lambda task, *args, **kw: submitted.append(task) or submit(task, *args,
                                                                                   **kw)
        await post_and_vanish(app, path, ENDPOINTS[path])
        assert Task.GENERATE in submitted, "the endpoint submitted a generation"
        assert engine.is_idle  # every request it submitted has been aborted
        # Each would run 200 steps of 20 ms; their slots are free within a few steps.
        assert await settled(lambda: engine.snapshot.num_slots_in_use == 0
                             and engine.snapshot.num_unfinished == 0)
