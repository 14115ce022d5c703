"""One replica of `takeoff serve --replicas N`: the single-process server inside Ray Serve.

Each replica builds the app `takeoff serve` builds (`create_app(config)`: its lifespan loads the
readers and runs the engine); Ray Serve runs that lifespan and hands the replica the HTTP requests
its proxy routes here, whole ASGI, so streams, disconnects and every endpoint behave as they do
in one process. Around the app, `ReplicaApp` adds:
- `X-Takeoff-Replica: <id>` on every response;
- answers for all replicas at once on GET /metrics (each sample labelled `replica`),
  /reader_groups (Takeoff's shape, one reader per group per replica) and /status
  (`{"replicas": {id: that replica's answer}}`): the replica that gets such a request asks every
  replica for its own answer (`DeploymentHandle.broadcast`) and combines them.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from ray import serve
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from takeoff.api.http import error_response
from takeoff.config import ServerConfig
from takeoff.errors import ApiError

logger = logging.getLogger("takeoff")
APP_NAME = "takeoff"
DEPLOYMENT_NAME = "TakeoffReplica"
REPLICA_HEADER = b"x-takeoff-replica"
ASK_ALL_TIMEOUT_S = 10.0
# A reader added at run time would live on one replica, and a replica Ray restarts or adds
# starts from the configuration: with replicas, the readers are the configuration's.
READERS_FIXED = ApiError(409, "with --replicas, readers cannot be added or removed at run time: "
                         "give them at start (--model, --classifier, --embedder or --config)",
                         "invalid_request_error")


@dataclass(frozen=True)
class Answer:
    """One replica's answer to a GET."""
    replica: str
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def json(self):
        return json.loads(self.body)

    def response(self) -> Response:
        headers = {k.decode(): v.decode() for k, v in self.headers if k != b"content-length"}
        return Response(self.body, status_code=self.status, headers=headers)


@serve.ingress()
class TakeoffReplica:
    """The deployment: Ray Serve builds one per replica, in its own worker process."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.replica_id = serve.get_replica_context().replica_tag
        self.takeoff_app: ASGIApp | None = None  # both built by __serve_build_asgi_app__
        self.replica_app: ReplicaApp | None = None
        self.draining = False

    def __serve_build_asgi_app__(self) -> ASGIApp:
        from takeoff.app import create_app

        self.takeoff_app = create_app(self.config)
        self.replica_app = ReplicaApp(self.takeoff_app, self.replica_id, self.ask_all)
        return self.replica_app

    async def answer_get(self, path: str, headers: list[tuple[bytes, bytes]]) -> Answer:
        """This replica's own answer to GET `path` (called on every replica by ask_all)."""
        status, response_headers, body = await asgi_get(self.takeoff_app, path, headers)
        return Answer(self.replica_id, status, response_headers, body)

    async def ask_all(self, path: str, headers: list[tuple[bytes, bytes]]) -> list[Answer]:
        handle = serve.get_deployment_handle(DEPLOYMENT_NAME, APP_NAME)
        answers = await handle.broadcast("answer_get", path, headers).results_async(
            timeout_s=ASK_ALL_TIMEOUT_S, return_exceptions=True)
        for failure in (a for a in answers if not isinstance(a, Answer)):
            logger.warning("a replica did not answer GET %s: %r", path, failure)
        return sorted((a for a in answers if isinstance(a, Answer)), key=lambda a: a.replica)

    def drain(self) -> int:
        """On SIGTERM, as `takeoff serve` does: new requests and /ready get 503, running ones
        go on. Returns the number of HTTP requests still being answered."""
        self.draining = True
        engine = getattr(self.takeoff_app.state, "engine", None)
        if engine is not None:
            engine.draining = True
        return self.replica_app.num_ongoing if self.replica_app else 0

    async def check_health(self) -> None:
        """Ray Serve calls this periodically; raising makes it replace the replica."""
        if self.draining:  # /ready says 503 on purpose
            return
        key = self.config.api_key
        headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
        status, _, body = await asgi_get(self.takeoff_app, "/ready", headers)
        if status != 200:
            raise RuntimeError(f"/ready answered {status}: {body[:200]!r}")


class ReplicaApp:
    """The replica's ASGI app: create_app's app, plus the replica header and the combined GETs."""

    def __init__(self, app: ASGIApp, replica_id: str,
                 ask_all: Callable[[str, list], Awaitable[list[Answer]]]) -> None:
        self.app = app
        self.header = (REPLICA_HEADER, replica_id.encode())
        self.ask_all = ask_all
        self.num_ongoing = 0  # HTTP requests being answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.num_ongoing += 1
        try:
            await self._answer(scope, receive, send)
        finally:
            self.num_ongoing -= 1

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        if _adds_or_removes_a_reader(scope):
            await error_response(READERS_FIXED)(scope, receive, send_with_header)
            return
        combine = COMBINED.get(scope["path"]) if scope["method"] == "GET" else None
        if combine is None:
            await self.app(scope, receive, send_with_header)
            return
        answers = await self.ask_all(scope["path"], list(scope["headers"]))
        await combined_response(answers, combine)(scope, receive, send_with_header)


def _adds_or_removes_a_reader(scope: Scope) -> bool:
    path, method = scope["path"], scope["method"]
    return (method == "POST" and path == "/reader") or (method == "DELETE"
                                                         and path.startswith("/reader/"))


def combined_response(answers: list[Answer], combine: Callable[[list[Answer]], Response]):
    """Every replica's refusal (401 without the key, 404 for an endpoint this version lacks) is
    passed through as it is; otherwise the combined answer."""
    if not answers:
        return JSONResponse({"error": {"message": "no replica answered", "type":
                                       "service_unavailable", "param": None}}, status_code=503)
    refused = [a for a in answers if not 200 <= a.status < 300]
    if len(refused) == len(answers):
        return refused[0].response()
    return combine(answers)


def per_replica_json(answers: list[Answer]) -> JSONResponse:
    """Any JSON endpoint, per replica: `{"replicas": {id: that replica's JSON answer}}`."""
    return JSONResponse({"replicas": {a.replica: a.json() for a in answers}})


def merged_reader_groups(answers: list[Answer]) -> JSONResponse:
    """Takeoff's `{group: [reader, ...]}`, with each replica's readers marked by `replica`."""
    groups: dict[str, list] = {}
    for answer in (a for a in answers if a.status == 200):
        for group, readers in answer.json().items():
            groups.setdefault(group, []).extend({**r, "replica": answer.replica} for r in readers)
    return JSONResponse(groups)


def labelled_metrics(answers: list[Answer]) -> Response:
    """One Prometheus exposition of every replica's metrics, each sample labelled `replica`."""
    families: dict = {}  # name -> prometheus_client Metric
    for answer in (a for a in answers if a.status == 200):
        for family in text_string_to_metric_families(answer.body.decode()):
            labelled = [s._replace(labels={**s.labels, "replica": answer.replica})
                        for s in family.samples]
            if family.name in families:
                families[family.name].samples += labelled
            else:
                family.samples = labelled
                families[family.name] = family
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families.values())))
    content_type = dict(answers[0].headers).get(b"content-type", b"text/plain").decode()
    return Response(generate_latest(registry), media_type=content_type)


class _Families:
    """A collector that hands back families already collected elsewhere."""

    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self):
        return self.families


COMBINED: dict[str, Callable[[list[Answer]], Response]] = {
    "/metrics": labelled_metrics,
    "/reader_groups": merged_reader_groups,
    "/status": per_replica_json,
}


async def asgi_get(app: ASGIApp, path: str,
                   headers: list[tuple[bytes, bytes]]) -> tuple[int, list, bytes]:
    """GET `path` from an ASGI app in this process: (status, headers, body)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "client": None, "server": None}
    requested, answered = asyncio.Event(), asyncio.Event()
    start: dict = {}
    chunks: list[bytes] = []

    async def receive() -> Message:
        if not requested.is_set():
            requested.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                answered.set()

    await app(scope, receive, send)
    return start["status"], list(start.get("headers", [])), b"".join(chunks)
