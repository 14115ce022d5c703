"""The Starlette application: the APIs of takeoff/api/ (and the feedback coach's, on a server that
can serve it) around one Engine, which its lifespan starts and stops."""
from __future__ import annotations

import asyncio
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

from scheduler.request import Task
from takeoff.api import management, openai, operations, takeoff
from takeoff.api.http import error_response
from takeoff.api.middleware import ApiMiddleware, PortFilter
from takeoff.config import ServerConfig
from takeoff.engine.engine import Engine
from takeoff.engine.metrics import Metrics
from takeoff.engine.readers import Reader, load_readers
from takeoff.errors import ApiError, validation_error
from takeoff.feedback import api as feedback_api
from takeoff.feedback.task import LABELS

logger = logging.getLogger("takeoff")
HTTP_ERROR_TYPES = {404: "not_found_error", 405: "method_not_allowed", 413: "request_too_large"}


def build_runner(config: ServerConfig, reader: Reader):
    """The model runner of one reader (blocking: a generator's allocates its KV cache)."""
    from kernels.runner import ModelRunner

    info = reader.info
    if info.task is Task.GENERATE:
        return ModelRunner(generator=reader.model, max_num_seqs=info.max_batch_size,
                           max_len=config.max_new_tokens, max_input_len=info.max_input_len,
                           grammars=reader.grammars)
    if info.task is Task.EMBED:
        return ModelRunner(embedder=reader.model, max_input_len=info.max_input_len)
    return ModelRunner(classifier=reader.model, max_input_len=info.max_input_len)


def build_runners(config: ServerConfig, readers: list[Reader], runner_factory: Callable) -> dict:
    return {reader.reader_id: runner_factory(config, reader) for reader in readers}


def serves_the_coach(config: ServerConfig, readers: list[Reader]) -> bool:
    """--feedback-app auto: a generator, and a classifier with the coach's nine labels."""
    if config.feedback_app != "auto":
        return config.feedback_app == "on"
    tasks = {reader.info.task for reader in readers}
    return Task.GENERATE in tasks and any(
        reader.info.task is Task.CLASSIFY and set(reader.model.labels) == set(LABELS)
        for reader in readers)


def create_app(config: ServerConfig, readers: list[Reader] | None = None,
               runner_factory: Callable = build_runner) -> Starlette:
    """`readers` already loaded (as `takeoff serve` does, to report load errors in one line),
    or None to load them in the lifespan."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette):
        loaded = readers if readers is not None else await asyncio.to_thread(load_readers, config)
        runners = await asyncio.to_thread(build_runners, config, loaded, runner_factory)
        engine = Engine(config, loaded, runners, metrics, runner_factory)
        engine.start()
        if serves_the_coach(config, loaded):
            app.router.routes.extend(feedback_api.routes())
        app.state.engine = engine
        app.state.started_at = time.time()
        _log_readiness(engine)
        try:
            yield
        finally:
            await engine.stop()

    app = Starlette(
        routes=takeoff.routes() + operations.routes() + management.routes() + openai.routes(),
        middleware=[Middleware(PortFilter, ports=config.listen_ports),
                    Middleware(ApiMiddleware, api_key=config.api_key, metrics=metrics)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                            ValidationError: _validation_error, Exception: _internal_error},
        lifespan=lifespan)
    app.state.config = config
    app.state.metrics = metrics
    app.state.max_body_bytes = config.max_body_bytes
    return app


def _log_readiness(engine: Engine) -> None:
    for info in engine.reader_set.groups().values():
        logger.info("consumer group %r: %s %s on %s (%s)", info.group, info.task.value,
                    info.model_path, info.device, info.dtype)
    # The KV cache's size is logged once, by kernels.runner.ModelRunner when it reserves it.


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc)


async def _validation_error(request: Request, exc: ValidationError) -> JSONResponse:
    return error_response(validation_error(exc))


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    error_type = HTTP_ERROR_TYPES.get(exc.status_code, "invalid_request_error")
    message = exc.detail
    if exc.status_code == 404:
        message = f"no endpoint at {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(ApiError(exc.status_code, message, error_type, None,
                                   dict(exc.headers or {})))


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s", request.url.path)
    return error_response(ApiError(500, "internal server error", "internal_error"))
