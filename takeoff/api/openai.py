"""The OpenAI-compatible API: /v1/models, /v1/completions and /v1/chat/completions.

The same engine serves it as the Takeoff API; only the field names, the defaults (OpenAI samples
at temperature 1 unless told 0) and the answer shapes differ. A consumer group is a "model".
"""
from __future__ import annotations

import asyncio
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

from scheduler.sampling_params import SamplingRequest
from takeoff.api.chat_template import CHAT_TEMPLATES, DEFAULT_CHAT_TEMPLATE, Message
from takeoff.api.http import check_count, drain, engine_of, read_json, unless_disconnected
from takeoff.api.openai_schemas import ChatCompletionBody, ChatTemplateBody, CompletionBody, \
    EmbeddingsBody
from takeoff.api.schemas import parse
from takeoff.api.sse import EventStream
from takeoff.engine.engine import Engine, GenerationResult, GenerationStream
from takeoff.engine.readers import EMBED, GENERATE
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
             "task": info.task} for name, info in engine.groups().items()]
    return JSONResponse({"object": "list", "data": data})


async def completions(request: Request):
    raw = await read_json(request)
    engine = engine_of(request)
    group = _group(engine, raw)
    body = parse(CompletionBody, raw)
    job = Job("text_completion", group, body.prompt, body.sampling(), body.stream,
              body.stream_options.include_usage)
    return await _run(request, engine, job)


async def chat_completions(request: Request):
    raw = await read_json(request)
    engine = engine_of(request)
    group = _group(engine, raw)
    body = parse(ChatCompletionBody, raw)
    template = CHAT_TEMPLATES[chat_template_of(engine, group)]
    try:
        prompt = template(body.chat_messages())
    except ValueError as exc:
        raise bad_request(str(exc), "messages") from None
    job = Job("chat.completion", group, [prompt], body.sampling(), body.stream,
              body.stream_options.include_usage)
    return await _run(request, engine, job)


def chat_template_of(engine: Engine, group: str) -> str:
    """The chat template of a generator group (`--chat-template` sets the generator group's)."""
    config = engine.config
    return config.chat_template if group == config.generator_group else DEFAULT_CHAT_TEMPLATE


def _group(engine: Engine, body: dict, task: str = GENERATE) -> str:
    """The group the `model` field names (checked first: an unknown model is a 404)."""
    name = body.get("model")
    if name is not None and not isinstance(name, str):
        raise bad_request("'model' must be a string", "model")
    try:
        return engine.resolve_group(name, task)
    except ApiError as exc:
        raise ApiError(exc.status, exc.message.replace("consumer group", "model"), exc.type,
                       "model") from None


# ---- answering -----------------------------------------------------------------------------
async def _run(request: Request, engine: Engine, job: Job):
    await engine.compile_grammar(job.sampling, job.group)
    streams: list[GenerationStream] = []
    try:
        for prompt in job.prompts:  # all submitted or none: a refusal aborts the earlier ones
            streams.append(engine.generate_stream(prompt, job.sampling, job.group,
                                                  stream=job.stream))
    except BaseException:
        for stream in streams:
            await stream.aclose()
        raise
    if job.stream:
        return EventStream(_chunks(job, streams), lambda: _close_all(streams), _error_chunk)
    try:
        await unless_disconnected(request, asyncio.gather(*(drain(s) for s in streams)))
    finally:
        for stream in streams:
            await stream.aclose()
    return JSONResponse(_answer(job, [s.result for s in streams]))


def _answer(job: Job, results: list[GenerationResult]) -> dict:
    choices = []
    for index, result in enumerate(results):
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


async def _close_all(streams: list[GenerationStream]) -> None:
    for stream in streams:
        await stream.aclose()


def _error_chunk(error: ApiError) -> ServerSentEvent:
    """An engine failure after the start: `data: {"error": ...}`, which the openai package
    raises."""
    return ServerSentEvent(data=json.dumps(error.body()))


async def _chunks(job: Job, streams: list[GenerationStream]) -> AsyncIterator[ServerSentEvent]:
    """`data: {chunk}` events, then `data: [DONE]`."""
    chat = job.kind == "chat.completion"
    envelope = _envelope(job, "chat.completion.chunk" if chat else "text_completion")

    def chunk(index: int, text: str | None, finish_reason: str | None = None) -> ServerSentEvent:
        choice: dict = {"index": index, "logprobs": None, "finish_reason": finish_reason}
        if chat:
            choice["delta"] = {} if text is None else {"content": text}
        else:
            choice["text"] = text or ""
        return ServerSentEvent(data=json.dumps({**envelope, "choices": [choice]}))

    if chat:
        for index in range(len(streams)):
            yield ServerSentEvent(data=json.dumps({**envelope, "choices": [{
                "index": index, "delta": {"role": "assistant", "content": ""},
                "logprobs": None, "finish_reason": None}]}))
    async for index, piece in _merged(streams):
        if piece is not None:
            yield chunk(index, piece)
        else:
            reason = FINISH_REASONS.get(streams[index].result.finish_reason, "stop")
            yield chunk(index, None, reason)
    if job.include_usage:
        usage = _usage([s.result for s in streams])
        yield ServerSentEvent(data=json.dumps({**envelope, "choices": [], "usage": usage}))
    yield ServerSentEvent(data="[DONE]")


async def _merged(streams: list[GenerationStream]) -> AsyncIterator[tuple[int, str | None]]:
    """(index, piece) from all streams as they come, and (index, None) when one has ended."""
    if len(streams) == 1:
        async for piece in streams[0]:
            yield 0, piece
        yield 0, None
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(index: int, stream: GenerationStream) -> None:
        try:
            async for piece in stream:
                queue.put_nowait((index, piece))
            queue.put_nowait((index, None))
        except Exception as exc:  # noqa: BLE001 - any failure must reach the reader
            queue.put_nowait((index, exc if isinstance(exc, ApiError) else ApiError(
                500, f"the stream failed: {exc}", "engine_error")))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        for _ in range(len(streams)):
            while True:
                index, item = await queue.get()
                if isinstance(item, ApiError):
                    raise item
                yield index, item
                if item is None:
                    break
    finally:
        for task in tasks:
            task.cancel()


async def embeddings(request: Request) -> JSONResponse:
    """OpenAI's embeddings shape; `result` too (Takeoff's, which its clients read)."""
    body = parse(EmbeddingsBody, await read_json(request))
    engine = engine_of(request)
    group = _group(engine, {"model": body.model}, EMBED)
    texts = body.input if isinstance(body.input, list) else [body.input]
    check_count(engine, group, EMBED, len(texts))
    vectors, num_tokens = await unless_disconnected(request, engine.embed(texts, group))
    if body.dimensions is not None and body.dimensions != len(vectors[0]):
        raise bad_request(f"'dimensions': this model's vectors have {len(vectors[0])}",
                          "dimensions")
    data = [{"object": "embedding", "index": i, "embedding": _encoded(v, body.encoding_format)}
            for i, v in enumerate(vectors)]
    return JSONResponse({"object": "list", "data": data, "model": group,
                         "usage": {"prompt_tokens": num_tokens, "total_tokens": num_tokens},
                         "result": vectors if isinstance(body.input, list) else vectors[0]})


async def chat_template(request: Request) -> JSONResponse:
    """Takeoff's /chat_template/{reader_id}: each conversation as the reader's group's chat
    template turns it into the model's input."""
    body = parse(ChatTemplateBody, await read_json(request))
    engine = engine_of(request)
    reader = engine.reader_set.get(request.path_params["reader_id"])
    if reader.info.task != GENERATE:
        raise bad_request(f"reader '{reader.reader_id}' {reader.info.task}s; only a generator "
                          "has a chat template", "reader_id")
    template = CHAT_TEMPLATES[chat_template_of(engine, reader.info.name)]
    try:
        texts = [template([Message(m.role, m.content) for m in conversation])
                 for conversation in body.inputs]
    except ValueError as exc:
        raise bad_request(str(exc), "inputs") from None
    return JSONResponse({"messages": texts})


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
        Route("/chat_template/{reader_id}", chat_template, methods=["POST"]),
    ]
