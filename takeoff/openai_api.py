"""The OpenAI-compatible API: /v1/models, /v1/completions and /v1/chat/completions.

The same engine serves it as the Takeoff API; only the field names, the defaults (OpenAI samples
at temperature 1 unless told 0) and the answer shapes differ. A consumer group is a "model".
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from scheduler.sampling_params import SamplingParams
from takeoff.chat_template import CHAT_TEMPLATES, DEFAULT_CHAT_TEMPLATE, Message
from takeoff.engine import Engine, GenerationResult, GenerationStream
from takeoff.errors import ApiError, bad_request
from takeoff.http import get_field, get_number, read_json
from takeoff.routes import MAX_SEED, engine_of, parse_stop

COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
FINISH_REASONS = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}
ROLES = ("system", "developer", "user", "assistant", "tool")
# Fields that would change the answer in ways this server cannot honour: refused, not ignored.
UNSUPPORTED = {"logprobs": "log probabilities", "top_logprobs": "log probabilities",
               "echo": "echo", "suffix": "suffix", "tools": "tools", "functions": "functions",
               "logit_bias": "logit_bias"}


@dataclass(frozen=True)
class Job:
    """One parsed request: the group, the encoder inputs (one per choice) and the sampling."""
    kind: str  # "text_completion" or "chat.completion"
    group: str
    prompts: list[str]
    params: SamplingParams
    stream: bool
    include_usage: bool


async def list_models(request: Request) -> JSONResponse:
    engine = engine_of(request)
    created = int(getattr(request.app.state, "started_at", time.time()))
    data = [{"id": name, "object": "model", "created": created, "owned_by": "takeoff",
             "task": info.task} for name, info in engine.groups().items()]
    return JSONResponse({"object": "list", "data": data})


async def completions(request: Request):
    body = await read_json(request)
    engine = engine_of(request)
    group = _group(engine, body)
    job = Job("text_completion", group, _prompts(body),
              _sampling(engine, body, group, COMPLETION_DEFAULT_MAX_TOKENS), *_streaming(body))
    return await _run(engine, job)


async def chat_completions(request: Request):
    body = await read_json(request)
    engine = engine_of(request)
    group = _group(engine, body)
    template = CHAT_TEMPLATES[chat_template_of(engine, group)]
    try:
        prompt = template(_messages(body))
    except ValueError as exc:
        raise bad_request(str(exc), "messages") from None
    default_max_tokens = engine.groups()[group].max_new_tokens
    job = Job("chat.completion", group, [prompt],
              _sampling(engine, body, group, default_max_tokens), *_streaming(body))
    return await _run(engine, job)


def chat_template_of(engine: Engine, group: str) -> str:
    """The chat template of a generator group (`--chat-template` sets the generator group's)."""
    config = engine.config
    return config.chat_template if group == config.generator_group else DEFAULT_CHAT_TEMPLATE


# ---- parsing -------------------------------------------------------------------------------
def _group(engine: Engine, body: dict) -> str:
    name = get_field(body, "model", str, None)
    try:
        return engine.resolve_group(name, "generate")
    except ApiError as exc:
        raise ApiError(exc.status, exc.message.replace("consumer group", "model"), exc.type,
                       "model") from None


def _prompts(body: dict) -> list[str]:
    value = get_field(body, "prompt", (str, list))
    prompts = [value] if isinstance(value, str) else value
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise bad_request("'prompt' must be a string or a non-empty list of strings (token-id "
                          "prompts are not supported)", "prompt")
    if not all(p.strip() for p in prompts):
        raise bad_request("'prompt' must not be empty", "prompt")
    return prompts


def _messages(body: dict) -> list[Message]:
    value = get_field(body, "messages", list)
    if not value:
        raise bad_request("'messages' must be a non-empty list", "messages")
    messages = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or item.get("role") not in ROLES:
            raise bad_request(f"messages[{i}] must be an object whose 'role' is one of "
                              f"{', '.join(ROLES)}", "messages")
        messages.append(Message(item["role"], _content(item.get("content"), i)))
    return messages


def _content(content: object, index: int) -> str:
    """A message's text: a string, or a list of text parts (other kinds of part are refused)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise bad_request(f"messages[{index}].content must be a string or a list of text parts "
                      "(this server reads text only)", "messages")


def _sampling(engine: Engine, body: dict, group: str, default_max_tokens: int) -> SamplingParams:
    _refuse_unsupported(body)
    cap = engine.groups()[group].max_new_tokens
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None \
        else "max_tokens"
    max_tokens = get_number(body, name, int, min(default_max_tokens, cap), minimum=1, maximum=cap)
    temperature = get_number(body, "temperature", float, 1.0, minimum=0, maximum=2)
    top_k = get_number(body, "top_k", int, 0, minimum=0)  # an extension, as in vLLM
    return SamplingParams(
        max_new_tokens=max_tokens,
        min_new_tokens=get_number(body, "min_tokens", int, 0, minimum=0, maximum=max_tokens),
        temperature=temperature,
        top_k=1 if temperature == 0 else top_k,
        top_p=get_number(body, "top_p", float, 1.0, above=0, maximum=1),
        repetition_penalty=get_number(body, "repetition_penalty", float, 1.0, above=0),
        seed=get_number(body, "seed", int, None, minimum=0, maximum=MAX_SEED),
        stop=parse_stop(body, "stop"))


def _refuse_unsupported(body: dict) -> None:
    if get_number(body, "n", int, 1, minimum=1) != 1:
        raise bad_request("'n' must be 1: this server returns one choice per prompt", "n")
    if get_number(body, "best_of", int, 1, minimum=1) != 1:
        raise bad_request("'best_of' must be 1", "best_of")
    for name in ("presence_penalty", "frequency_penalty"):
        if get_number(body, name, float, 0.0) != 0:
            raise bad_request(f"'{name}' is not supported (use repetition_penalty)", name)
    for name, what in UNSUPPORTED.items():
        if body.get(name) not in (None, False, [], {}):
            raise bad_request(f"'{name}': {what} is not supported by this server", name)


def _streaming(body: dict) -> tuple[bool, bool]:
    stream = get_field(body, "stream", bool, False)
    options = get_field(body, "stream_options", dict, None) or {}
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise bad_request("'stream_options.include_usage' must be a boolean", "stream_options")
    return stream, include_usage


# ---- answering -----------------------------------------------------------------------------
async def _run(engine: Engine, job: Job):
    streams: list[GenerationStream] = []
    try:
        for prompt in job.prompts:  # all submitted or none: a refusal aborts the earlier ones
            streams.append(engine.generate_stream(prompt, job.params, job.group))
    except BaseException:
        for stream in streams:
            await stream.aclose()
        raise
    if job.stream:
        return EventSourceResponse(_chunks(job, streams))
    try:
        await asyncio.gather(*(_drain(s) for s in streams))
    finally:
        for stream in streams:
            await stream.aclose()
    return JSONResponse(_answer(job, [s.result for s in streams]))


async def _drain(stream: GenerationStream) -> None:
    async for _ in stream:
        pass


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


async def _chunks(job: Job, streams: list[GenerationStream]) -> AsyncIterator[ServerSentEvent]:
    """`data: {chunk}` events, then `data: [DONE]`; an engine failure after the start is sent as
    `data: {"error": ...}`, which the openai package raises. When the client goes away,
    sse-starlette cancels this generator and `finally` aborts every request."""
    chat = job.kind == "chat.completion"
    envelope = _envelope(job, "chat.completion.chunk" if chat else "text_completion")

    def chunk(index: int, text: str | None, finish_reason: str | None = None) -> ServerSentEvent:
        choice: dict = {"index": index, "logprobs": None, "finish_reason": finish_reason}
        if chat:
            choice["delta"] = {} if text is None else {"content": text}
        else:
            choice["text"] = text or ""
        return ServerSentEvent(data=json.dumps({**envelope, "choices": [choice]}))

    try:
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
    except ApiError as exc:
        yield ServerSentEvent(data=json.dumps(exc.body()))
    finally:
        for stream in streams:
            await stream.aclose()


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
        except ApiError as exc:
            queue.put_nowait((index, exc))

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


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]
