"""HTTP helpers every route uses: the body as a JSON object (its fields are then checked by the
pydantic models in takeoff/api/*schemas.py), the engine of the app, waiting for work unless the
client leaves, and an ApiError as the contract's JSON answer."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse

from scheduler.request import Task
from takeoff.engine.engine import Engine
from takeoff.errors import ApiError, bad_request, too_large, unavailable

T = TypeVar("T")

DEFAULT_MAX_BODY_BYTES = 1 << 20


async def read_json(request: Request, max_bytes: int | None = None) -> dict[str, Any]:
    """The body as a JSON object; 413 past the limit, 400 when it is not a JSON object."""
    limit = max_bytes or getattr(request.app.state, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(f"request body is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(f"request body is over the limit of {limit} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("request body must be a JSON object")
    return data


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def engine_of(request: Request) -> Engine:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise unavailable("the server is still starting")
    return engine


def check_count(engine: Engine, group: str | None, task: Task, num_inputs: int,
                field: str = "text") -> None:
    """413 for more inputs than the group can ever take in one go (the client's `field`)."""
    limit = engine.reader_set.max_inputs(group, task)
    if num_inputs > limit:
        raise too_large(f"'{field}' holds {num_inputs} inputs; one request takes at most {limit}",
                        field)


async def unless_disconnected(request: Request, awaitable: Awaitable[T]) -> T:
    """Await `awaitable` (the body already read), cancelling it if the client goes away first,
    so an abandoned request frees its slots instead of running for no one. Every endpoint that
    answers once, after the engine's work, awaits that work through this."""
    work = asyncio.ensure_future(awaitable)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        abandoned = not work.done()
        if abandoned:
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
    if abandoned:  # nobody hears this answer; it shows in the metrics as 499
        raise ApiError(499, "the client closed the connection", "client_closed_request")
    return work.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
