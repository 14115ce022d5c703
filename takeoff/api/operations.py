"""Operations endpoints: liveness, readiness (with the engine watchdog), Prometheus metrics and
the API's OpenAPI document."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from takeoff.api.http import engine_of
from takeoff.api.openapi import openapi_document
from takeoff.engine.metrics import CONTENT_TYPE
from takeoff.errors import unavailable


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> JSONResponse:
    engine = engine_of(request)
    if engine.draining:
        raise unavailable("the server is draining")
    if not engine.is_running:
        raise unavailable("the engine is not running")
    stuck_s = engine.seconds_in_step()
    if stuck_s > engine.config.watchdog_timeout:
        raise unavailable(f"the engine has been in one step for {stuck_s:.0f} s (watchdog "
                          f"{engine.config.watchdog_timeout:g} s)")
    return JSONResponse({"status": "ready"})


async def openapi(request: Request) -> JSONResponse:
    """This server's API as OpenAPI 3.1 (the feedback coach's endpoints where it serves them)."""
    served = {getattr(route, "path", None) for route in request.app.router.routes}
    return JSONResponse(openapi_document(with_feedback="/v1/feedback/analyze" in served))


async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


def routes() -> list[BaseRoute]:
    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
