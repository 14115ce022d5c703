"""Runs inside Ray Serve's HTTP proxy: every answer keeps the API's shape when a replica fails.

Ray's proxy, when the replica serving a request dies, sends nothing (uvicorn then answers a
plain-text 500) or, mid-stream, just stops (the client sees a truncated chunked body). Its own
refusals (no replica up, request timeout) are plain text too. This middleware finishes each of
those the way a takeoff server would: a 503 with the JSON error body and Retry-After before the
answer has started; an `event: error` with that body, then the end of the stream, after an SSE
stream has started (the openai package raises it, like takeoff's own stream errors).

Ray loads it in each proxy through RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH, which
takeoff.replicas.driver sets for the proxies it starts. It imports no Ray and no torch.
"""
from __future__ import annotations

import json

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from takeoff.errors import ApiError

IMPORT_PATH = "takeoff.replicas.proxy:proxy_middlewares"
REPLICA_HEADER = b"x-takeoff-replica"
REPLICA_FAILED = "the replica serving this request stopped before it finished; retry"
ERROR_TYPES = {404: "not_found_error", 408: "timeout_error", 429: "overloaded_error"}


def proxy_middlewares() -> list[Middleware]:
    return [Middleware(ReplicaFailureMiddleware)]


class ReplicaFailureMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = ResponseTracker(send)
        await self.app(scope, receive, response.send)
        if not response.started:
            await _send_error(send, ApiError(503, REPLICA_FAILED, "service_unavailable",
                                             headers={"Retry-After": "1"}))
        elif not response.finished:
            tail = _error_event(REPLICA_FAILED) if response.is_event_stream else b""
            await send({"type": "http.response.body", "body": tail, "more_body": False})


class ResponseTracker:
    """Passes messages on, noting how far the response got; a plain-text error that the proxy
    wrote itself (no replica header) is held back and sent as the API's JSON error instead."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = self.finished = self.is_event_stream = False
        self._held: Message | None = None  # the proxy's own plain-text error start
        self._held_body = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            headers = dict(message.get("headers", []))
            content_type = headers.get(b"content-type", b"")
            self.is_event_stream = content_type.startswith(b"text/event-stream")
            if (message["status"] >= 400 and REPLICA_HEADER not in headers
                    and content_type.startswith(b"text/plain")):
                self._held = message
                return
        elif message["type"] == "http.response.body":
            self.finished = not message.get("more_body", False)
            if self._held is not None:
                self._held_body += message.get("body", b"")
                if self.finished:
                    await self._send_held()
                return
        await self._send(message)

    async def _send_held(self) -> None:
        status = self._held["status"]
        retry_after = dict(self._held.get("headers", [])).get(b"retry-after")
        error_type = ERROR_TYPES.get(status, "service_unavailable")
        message = self._held_body.decode("utf-8", "replace").strip() or "the proxy failed"
        await _send_error(self._send, ApiError(
            status, message, error_type,
            headers={"Retry-After": retry_after.decode()} if retry_after else None))


async def _send_error(send: Send, error: ApiError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _error_event(message: str) -> bytes:
    data = json.dumps(ApiError(503, message, "service_unavailable").body())
    return f"event: error\r\ndata: {data}\r\n\r\n".encode()
