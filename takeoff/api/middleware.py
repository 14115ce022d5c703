"""ASGI middleware: which API each port serves, the API key, and the request counter."""
from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from takeoff.api.http import error_response
from takeoff.engine.metrics import Metrics
from takeoff.errors import ApiError, not_found

# What the management and OpenAI ports serve; the main port serves everything.
MANAGEMENT_PATHS = ("/status", "/reader_groups", "/reader", "/reader/", "/config/")
OPENAI_PATHS = ("/v1/",)
OPERATIONS_PATHS = ("/health", "/ready", "/metrics", "/openapi.json")


class PortFilter:
    """On the management port only Takeoff's management API, on the OpenAI port only /v1/
    (both also answer /health, /ready, /metrics); any other port (the main one, or a proxy's)
    serves the whole API."""

    def __init__(self, app: ASGIApp, ports: dict[str, int]) -> None:
        self.app = app
        self.api_of_port = {port: name for name, port in ports.items() if name != "main"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("server"):
            api = self.api_of_port.get(scope["server"][1])
            if api is not None and not _serves(api, scope["path"]):
                error = not_found(f"no endpoint at {scope['path']} on the {api} port; the main "
                                  f"port serves the whole API")
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _serves(api: str, path: str) -> bool:
    prefixes = MANAGEMENT_PATHS if api == "management" else OPENAI_PATHS
    return path in OPERATIONS_PATHS or any(
        path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes)


class ApiMiddleware:
    """Bearer-token check (when a key is set) and the request counter by endpoint and status."""

    def __init__(self, app: ASGIApp, api_key: str | None, metrics: Metrics) -> None:
        self.app = app
        self.api_key = api_key
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self._authorized(scope):
                await self.app(scope, receive, send_counted)
            else:
                error = ApiError(401, "a valid API key is required: send 'Authorization: Bearer "
                                 "<key>'", "authentication_error", None,
                                 {"WWW-Authenticate": "Bearer"})
                await error_response(error)(scope, receive, send_counted)
        finally:
            # The `endpoint` label is the path template of the route the router matched (it
            # notes it in the scope), never an arbitrary path: the label set stays bounded.
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "other"
            self.metrics.requests.labels(endpoint, str(status)).inc()

    def _authorized(self, scope: Scope) -> bool:
        # Open without the key: liveness, and the web page with its assets (a browser cannot send
        # a bearer token when it navigates; the page sends the key on its own API calls).
        path = scope["path"]
        if not self.api_key or path == "/health":
            return True
        if scope["method"] in ("GET", "HEAD") and (path == "/" or path.startswith("/static/")):
            return True
        headers = dict(scope["headers"])
        given = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                                  self.api_key.encode())
