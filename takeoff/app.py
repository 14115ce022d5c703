"""The Starlette application: its lifespan loads the readers and runs the engine."""
from __future__ import annotations

import asyncio
import hmac
import logging
import time
from contextlib import asynccontextmanager
from typing import Callable

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from takeoff import openai_api, routes
from takeoff.config import ServerConfig
from takeoff.engine import Engine
from takeoff.errors import ApiError
from takeoff.feedback import api as feedback_api
from takeoff.metrics import Metrics
from takeoff.readers import GENERATE, Reader, load_readers
from takeoff.schemas import validation_error_response

logger = logging.getLogger("takeoff")
HTTP_ERROR_TYPES = {404: "not_found_error", 405: "method_not_allowed", 413: "request_too_large"}


def build_runner(config: ServerConfig, reader: Reader):
    """The model runner of one reader (blocking: a generator's allocates its KV cache)."""
    from kernels.runner import ModelRunner

    if reader.info.task == GENERATE:
        return ModelRunner(generator=reader.model, max_num_seqs=config.max_num_seqs,
                           max_len=config.max_new_tokens, max_input_len=reader.info.max_input_len)
    return ModelRunner(classifier=reader.model, max_input_len=reader.info.max_input_len)


def build_runners(config: ServerConfig, readers: list[Reader], runner_factory: Callable) -> dict:
    return {reader.reader_id: runner_factory(config, reader) for reader in readers}


def create_app(config: ServerConfig, readers: list[Reader] | None = None,
               runner_factory: Callable = build_runner) -> Starlette:
    """`readers` already loaded (as `takeoff serve` does, to report load errors in one line),
    or None to load them in the lifespan."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette):
        loaded = readers if readers is not None else await asyncio.to_thread(load_readers, config)
        runners = await asyncio.to_thread(build_runners, config, loaded, runner_factory)
        engine = Engine(config, loaded, runners, metrics)
        engine.start()
        app.state.engine = engine
        app.state.started_at = time.time()
        _log_readiness(engine)
        try:
            yield
        finally:
            await engine.stop()

    all_routes = routes.routes() + openai_api.routes() + feedback_api.routes()
    app = Starlette(
        routes=all_routes,
        middleware=[Middleware(ApiMiddleware, api_key=config.api_key, metrics=metrics,
                               endpoints=_endpoint_names(all_routes))],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                            ValidationError: validation_error_response,
                            Exception: _internal_error},
        lifespan=lifespan)
    app.state.config = config
    app.state.metrics = metrics
    app.state.max_body_bytes = config.max_body_bytes
    return app


def _log_readiness(engine: Engine) -> None:
    for info in engine.groups().values():
        logger.info("consumer group %r: %s %s on %s (%s)", info.name, info.task, info.model_path,
                    info.device, info.dtype)
    # The KV cache's size is logged once, by kernels.runner.ModelRunner when it reserves it.


def _endpoint_names(all_routes: list[BaseRoute]) -> tuple[set[str], tuple[str, ...]]:
    """Exact paths and mount prefixes: the `endpoint` label never takes an arbitrary path."""
    paths = {r.path for r in all_routes if isinstance(r, Route)}
    prefixes = tuple(r.path for r in all_routes if isinstance(r, Mount))
    return paths, prefixes


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return exc.response()


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    error_type = HTTP_ERROR_TYPES.get(exc.status_code, "invalid_request_error")
    message = exc.detail
    if exc.status_code == 404:
        message = f"no endpoint at {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return ApiError(exc.status_code, message, error_type, None, dict(exc.headers or {})).response()


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s", request.url.path)
    return ApiError(500, "internal server error", "internal_error").response()


class ApiMiddleware:
    """Bearer-token check (when a key is set) and the request counter by endpoint and status."""

    def __init__(self, app: ASGIApp, api_key: str | None, metrics: Metrics,
                 endpoints: tuple[set[str], tuple[str, ...]]) -> None:
        self.app = app
        self.api_key = api_key
        self.metrics = metrics
        self.paths, self.prefixes = endpoints

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
                await error.response()(scope, receive, send_counted)
        finally:
            self.metrics.requests.labels(self._endpoint(scope["path"]), str(status)).inc()

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

    def _endpoint(self, path: str) -> str:
        if path in self.paths:
            return path
        return next((p for p in self.prefixes if path.startswith(p + "/")), "other")
