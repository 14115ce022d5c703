"""The API as OpenAPI 3.1, built from the pydantic models the routes parse bodies with and the
models of their answers: GET /openapi.json, and docs/openapi.json (`make openapi`, held equal by
tests/server/test_api_openapi.py). A request field the document does not describe does not exist.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from takeoff import __version__
from takeoff.api import management_schemas as management, openai_schemas as openai, \
    takeoff_schemas as takeoff
from takeoff.api.schemas import ErrorBody
from takeoff.engine.manifest import ReaderConfig
from takeoff.feedback import schemas as feedback

JSON, EVENTS, TEXT, HTML = "application/json", "text/event-stream", "text/plain", "text/html"
REASONS = {200: "the answer", 201: "created", 400: "invalid body or parameter", 401:
           "missing or wrong API key", 404: "unknown path, group or reader", 409: "a duplicate "
           "reader", 413: "body or input over its limit", 429: "queue full (Retry-After)", 500:
           "the model failed on this request", 503: "starting, draining, or timed out in the "
           "queue", 507: "not enough free memory for the reader"}
SUBMITS = (400, 404, 413, 429, 500, 503)  # what a request that reaches the engine may hear
READS = (404, 503)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    body: type[BaseModel] | None  # the request body's model
    answer: type[BaseModel] | None  # the JSON answer's model; None: `media` as text
    errors: tuple[int, ...] = SUBMITS
    media: str = JSON
    status: int = 200
    # With `stream: true` in its body (or as /generate_stream always), the answer is server-sent
    # events of these types: "message" carries a text piece (OpenAI: a chunk's JSON), the others
    # the closing JSON or the error's.
    events: tuple[str, ...] = ()


OPERATIONS = [
    Operation("post", "/generate", "Generate text for one input or a list", "takeoff",
              takeoff.GenerateBody, takeoff.GenerateAnswer),
    Operation("post", "/generate_stream", "Generate one text, streamed as server-sent events "
              "(then `event: metadata`)", "takeoff", takeoff.GenerateStreamBody, None,
              media=EVENTS, events=("message", "metadata", "error")),
    Operation("post", "/classify", "Label probabilities per input", "takeoff",
              takeoff.ClassifyBody, takeoff.ClassifyAnswer),
    Operation("post", "/embed", "A vector per input", "takeoff", takeoff.EmbedBody,
              takeoff.EmbedAnswer),
    Operation("post", "/tokenize", "Tokens of a group's tokenizer", "takeoff",
              takeoff.TokenizeBody, takeoff.TokenizeAnswer, (400, 404, 413, 503)),
    Operation("post", "/tokenize/{reader_id}", "Tokens of a reader's tokenizer", "takeoff",
              takeoff.TokenizeReaderBody, takeoff.TokenizeReaderAnswer, (400, 404, 413, 503)),
    Operation("post", "/detokenize/{reader_id}", "Text of token ids or pieces", "takeoff",
              takeoff.DetokenizeBody, takeoff.DetokenizeAnswer, (400, 404, 413, 503)),
    Operation("post", "/chat_template/{reader_id}", "Conversations as a generator's chat "
              "template writes them", "takeoff", takeoff.ChatTemplateBody,
              takeoff.ChatTemplateAnswer, (400, 404, 413, 503)),
    Operation("get", "/health", "The process is alive", "operations", None,
              takeoff.HealthAnswer, ()),
    Operation("get", "/ready", "Ready to serve (503 while starting, draining or stuck)",
              "operations", None, takeoff.HealthAnswer, READS),
    Operation("get", "/metrics", "Prometheus metrics", "operations", None, None, (), TEXT),
    Operation("get", "/openapi.json", "This document", "operations", None, None, ()),
    Operation("get", "/status", "The server's settings and readers", "management", None,
              management.StatusAnswer, READS),
    Operation("get", "/reader_groups", "Each consumer group's readers", "management", None,
              management.ReaderGroups, READS),
    Operation("get", "/config/{reader_id}", "A reader's ReaderConfig", "management", None,
              management.ReaderSettings, READS),
    Operation("post", "/reader", "Load a reader while serving", "management", ReaderConfig,
              management.ReaderDescription, (400, 409, 413, 503, 507), status=201),
    Operation("delete", "/reader/{reader_id}", "Drain and remove a reader", "management", None,
              management.RemovedAnswer, READS),
    Operation("get", "/v1/models", "One model per consumer group", "openai", None,
              openai.ModelList, READS),
    Operation("post", "/v1/completions", "OpenAI completions (`stream`: server-sent events)",
              "openai", openai.CompletionBody, openai.Completion, events=("message",)),
    Operation("post", "/v1/chat/completions", "OpenAI chat completions (`stream`: server-sent "
              "events)", "openai", openai.ChatCompletionBody, openai.ChatCompletion,
              events=("message",)),
    Operation("post", "/v1/embeddings", "OpenAI embeddings", "openai", openai.EmbeddingsBody,
              openai.EmbeddingList),
]
FEEDBACK = [
    Operation("get", "/", "The feedback coach's page", "feedback", None, None, (), HTML),
    Operation("post", "/v1/feedback/analyze", "Each sentence's label and kind", "feedback",
              feedback.FeedbackBody, feedback.Analysis),
    Operation("post", "/v1/feedback/improve", "Rewrite the critical sentences (`stream`: "
              "server-sent events, then `event: result`)", "feedback", feedback.FeedbackBody,
              feedback.Improvement, events=("message", "result", "error")),
]


def openapi_document(with_feedback: bool = True) -> dict:
    """The whole API; the feedback coach's endpoints where the server serves them."""
    operations = OPERATIONS + (FEEDBACK if with_feedback else [])
    keys = [(model, mode) for op in operations for model, mode in
            ((op.body, "validation"), (op.answer, "serialization")) if model is not None]
    names, definitions = models_json_schema(keys + [(ErrorBody, "serialization")],
                                            ref_template="#/components/schemas/{model}")
    paths: dict[str, dict] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, names)
    error = names[(ErrorBody, "serialization")]
    return {"openapi": "3.1.0",
            "info": {"title": "takeoff", "version": __version__,
                     "description": "The Takeoff API, Takeoff's management API, an "
                                    "OpenAI-compatible API and the feedback coach's. Every "
                                    "error is an ErrorBody."},
            "paths": paths,
            "components": {"schemas": definitions["$defs"],
                           "responses": {"Error": {"description": "an error",
                                                   "content": {JSON: {"schema": error}}}}}}


def _operation(op: Operation, names: dict) -> dict:
    described: dict = {"summary": op.summary, "tags": [op.tag],
                       "operationId": f"{op.method}_{re.sub(r'[^a-z0-9]+', '_', op.path)}".strip("_")}
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in re.findall(r"{(\w+)}", op.path)]
    if parameters:
        described["parameters"] = parameters
    if op.body is not None:
        described["requestBody"] = {"required": True, "content": {
            JSON: {"schema": names[(op.body, "validation")]}}}
    if op.answer is not None:
        content = {JSON: {"schema": names[(op.answer, "serialization")]}}
    elif op.media != EVENTS:
        content = {op.media: {"schema": {"type": "object" if op.media == JSON else "string"}}}
    else:
        content = {}
    if op.events:
        content[EVENTS] = {"schema": {  # each event, as OpenAPI 3.1 has it
            "type": "object", "required": ["event", "data"],
            "properties": {"event": {"enum": list(op.events)}, "data": {"type": "string"}}}}
    responses = {str(op.status): {"description": REASONS[op.status], "content": content}}
    for status in sorted(set(op.errors) | {401}):
        responses[str(status)] = {"$ref": "#/components/responses/Error",
                                  "description": REASONS[status]}
    described["responses"] = responses
    return described


def main() -> None:
    """`python -m takeoff.api.openapi`: the document on stdout (make openapi writes
    docs/openapi.json with it)."""
    print(json.dumps(openapi_document(), indent=2))


if __name__ == "__main__":
    main()
