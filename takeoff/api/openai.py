"""The OpenAI-compatible API: /v1/models, /v1/completions, /v1/chat/completions, /v1/embeddings.

The same engine serves it as the Takeoff API; only the field names, the defaults (OpenAI samples
at temperature 1 unless told 0) and the answer shapes differ. A consumer group is a "model".
"""
from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from dataclasses import dataclass
from typing import AsyncIterator

from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from scheduler.request import Task
from scheduler.sampling_params import SamplingRequest
from takeoff.api.chat_template import template_of
from takeoff.api.http import check_count, engine_of, read_json, unless_disconnected
from takeoff.api.openai_schemas import ChatCompletionBody, CompletionBody, EmbeddingsBody
from takeoff.api.schemas import parse
from takeoff.api.sse import EventStream
from takeoff.engine.engine import Engine
from takeoff.engine.stream import GenerationResult
from takeoff.engine.submission import Submission
from takeoff.errors import ApiError, bad_request

FINISH_REASONS = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


@dataclass(frozen=True)
class Job:
    """One parsed request: the group, the encoder inputs (one per choice) and the sampling."""
    kind: str  # "text_completion" or "chat.completion"
    group: str
    prompts: list[str]
    sampling: SamplingRequest
    stream: bool
    include_usage: bool


async def list_models(request: Request) -> JSONResponse:
    engine = engine_of(request)
    created = int(getattr(request.app.state, "started_at", time.time()))
    data = [{"id": name, "object": "model", "created": created, "owned_by": "takeoff",
             "task": info.task.value} for name, info in engine.reader_set.groups().items()]
    return JSONResponse({"object": "list", "data": data})


async def completions(request: Request):
    body = parse(CompletionBody, await read_json(request))
    engine = engine_of(request)
    job = Job("text_completion", model_group(engine, body.model, Task.GENERATE), body.prompt,
              body.sampling(), body.stream, body.stream_options.include_usage)
    return await _run(request, engine, job)


async def chat_completions(request: Request):
    body = parse(ChatCompletionBody, await read_json(request))
    engine = engine_of(request)
    group = model_group(engine, body.model, Task.GENERATE)
    try:
        prompt = template_of(engine.config, group)(body.chat_messages())
    except ValueError as exc:
        raise bad_request(str(exc), "messages") from None
    job = Job("chat.completion", group, [prompt], body.sampling(), body.stream,
              body.stream_options.include_usage)
    return await _run(request, engine, job)


def model_group(engine: Engine, model: str | None, task: Task) -> str:
    """The consumer group the `model` field names (404 unknown, 400 another task)."""
    try:
        return engine.reader_set.resolve(model, task)
    except ApiError as exc:
        raise ApiError(exc.status, exc.message.replace("consumer group", "model"), exc.type,
                       "model") from None


# ---- answering -----------------------------------------------------------------------------
async def _run(request: Request, engine: Engine, job: Job):
    work = await engine.submit(Task.GENERATE, job.prompts, job.group, job.sampling,
                               stream=job.stream)
    if job.stream:
        return EventStream(_chunks(job, work), work, _error_chunk)
    async with work:
        results = await unless_disconnected(request, work.results())
    return JSONResponse(_answer(job, results))


def _answer(job: Job, results: list[GenerationResult]) -> dict:
    """One choice per prompt, or a beam search's n best sequences per prompt, in order."""
    choices = []
    for index, result in enumerate(c for r in results for c in r.choices()):
        choice: dict = {"index": index, "logprobs": None,
                        "finish_reason": FINISH_REASONS.get(result.finish_reason, "stop")}
        if job.kind == "chat.completion":
            choice["message"] = {"role": "assistant", "content": result.text}
        else:
            choice["text"] = result.text
        choices.append(choice)
    return {**_envelope(job, job.kind), "choices": choices, "usage": _usage(results)}


def _usage(results: list[GenerationResult]) -> dict:
    prompt = sum(r.input_tokens for r in results)
    completion = sum(r.generated_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _envelope(job: Job, kind: str) -> dict:
    return {"id": ("chatcmpl-" if job.kind == "chat.completion" else "cmpl-") + uuid.uuid4().hex,
            "object": kind, "created": int(time.time()), "model": job.group}


def _error_chunk(error: ApiError) -> ServerSentEvent:
    """An engine failure after the start: `data: {"error": ...}`, which the openai package
    raises."""
    return ServerSentEvent(data=json.dumps(error.body()))


async def _chunks(job: Job, work: Submission) -> AsyncIterator[ServerSentEvent]:
    """`data: {chunk}` events, then `data: [DONE]`. Prompt i's choices are i * n .. i * n + n - 1;
    a beam search's come whole, one chunk each, when its search ends."""
    chat = job.kind == "chat.completion"
    envelope = _envelope(job, "chat.completion.chunk" if chat else "text_completion")

    def chunk(index: int, text: str | None, finish_reason: str | None = None) -> ServerSentEvent:
        choice: dict = {"index": index, "logprobs": None, "finish_reason": finish_reason}
        if chat:
            choice["delta"] = {} if text is None else {"content": text}
        else:
            choice["text"] = text or ""
        return ServerSentEvent(data=json.dumps({**envelope, "choices": [choice]}))

    n, beams = work.sampling.num_return_sequences, work.sampling.is_beam_search
    if chat:
        for index in range(len(work.streams) * n):
            yield ServerSentEvent(data=json.dumps({**envelope, "choices": [{
                "index": index, "delta": {"role": "assistant", "content": ""},
                "logprobs": None, "finish_reason": None}]}))
    async for index, piece in work.pieces():
        if piece is not None:
            if not beams:  # a beam search's piece is its best text: sent with its choices
                yield chunk(index, piece)
            continue
        for j, choice in enumerate(work.streams[index].result.choices()):
            if beams and choice.text:
                yield chunk(index * n + j, choice.text)
            yield chunk(index * n + j, None, FINISH_REASONS.get(choice.finish_reason, "stop"))
    if job.include_usage:
        usage = _usage([s.result for s in work.streams])
        yield ServerSentEvent(data=json.dumps({**envelope, "choices": [], "usage": usage}))
    yield ServerSentEvent(data="[DONE]")


async def embeddings(request: Request) -> JSONResponse:
    """OpenAI's embeddings shape; `result` too (Takeoff's, which its clients read)."""
    engine = engine_of(request)
    body = parse(EmbeddingsBody, await read_json(request),
                 dimensions_of=lambda model: _dimensions(engine, model))
    group = model_group(engine, body.model, Task.EMBED)
    check_count(engine, group, Task.EMBED, len(body.inputs), "input")
    async with engine.submit(Task.EMBED, body.inputs, group) as work:
        vectors = await unless_disconnected(request, work.results())
    data = [{"object": "embedding", "index": i, "embedding": _encoded(v, body.encoding_format)}
            for i, v in enumerate(vectors)]
    usage = {"prompt_tokens": work.num_prompt_tokens, "total_tokens": work.num_prompt_tokens}
    return JSONResponse({"object": "list", "data": data, "model": group, "usage": usage,
                         "result": vectors if isinstance(body.input, list) else vectors[0]})


def _dimensions(engine: Engine, model: str | None) -> int | None:
    """The vector length of the embedding group `model` names; None when it names none (the
    route answers that with a 404)."""
    try:
        return engine.reader_set.groups()[engine.reader_set.resolve(model, Task.EMBED)].dimensions
    except ApiError:
        return None


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
    ]
