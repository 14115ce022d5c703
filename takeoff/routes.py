"""The Takeoff API and the operations endpoints. Routes parse, hand over to the engine, answer."""
from __future__ import annotations

import asyncio
import json
from typing import Awaitable, TypeVar

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from scheduler.sampling_params import SamplingParams
from takeoff.engine import Engine, GenerationStream
from takeoff.errors import ApiError, bad_request, too_large, unavailable
from takeoff.http import get_field, get_number, get_text, read_json
from takeoff.metrics import CONTENT_TYPE

MAX_SEED = 2**63 - 1
T = TypeVar("T")
MAX_STOP_SEQUENCES = 16


def parse_sampling(body: dict) -> SamplingParams:
    """The Takeoff sampling fields, with Takeoff's names and defaults (sampling_topk=1: greedy).
    Each mistake is a 400 naming its field; the server's own max_new_tokens cap is the engine's."""
    max_new_tokens = get_number(body, "max_new_tokens", int, 128, minimum=1)
    return SamplingParams(
        max_new_tokens=max_new_tokens,
        min_new_tokens=get_number(body, "min_new_tokens", int, 0, minimum=0,
                                  maximum=max_new_tokens),
        temperature=get_number(body, "sampling_temperature", float, 1.0, minimum=0),
        top_p=get_number(body, "sampling_topp", float, 1.0, above=0, maximum=1),
        top_k=get_number(body, "sampling_topk", int, 1, minimum=0),
        repetition_penalty=get_number(body, "repetition_penalty", float, 1.0, above=0),
        no_repeat_ngram_size=get_number(body, "no_repeat_ngram_size", int, 0, minimum=0),
        seed=get_number(body, "seed", int, None, minimum=0, maximum=MAX_SEED),
        stop=parse_stop(body, "stop"))


def parse_stop(body: dict, name: str) -> tuple[str, ...]:
    """A string or a list of non-empty strings; absent or null means none."""
    value = get_field(body, name, (str, list), None)
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if len(stops) > MAX_STOP_SEQUENCES:
        raise bad_request(f"'{name}' takes at most {MAX_STOP_SEQUENCES} sequences", name)
    if not all(isinstance(s, str) and s for s in stops):
        raise bad_request(f"'{name}' must be a list of non-empty strings", name)
    return tuple(stops)


def engine_of(request: Request) -> Engine:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise unavailable("the server is still starting")
    return engine


def _texts(body: dict) -> tuple[list[str], bool]:
    """`text` as a list, and whether it was given as a list."""
    value = get_field(body, "text", (str, list))
    if isinstance(value, str):
        return [get_text(body)], False
    if not value:
        raise bad_request("'text' must not be an empty list", "text")
    if not all(isinstance(t, str) and t.strip() for t in value):
        raise bad_request("'text' must be a string or a list of non-empty strings", "text")
    return value, True


def _check_count(request: Request, num_texts: int) -> None:
    limit = engine_of(request).config.max_queue
    if num_texts > limit:
        raise too_large(f"'text' holds {num_texts} inputs; one request takes at most {limit}",
                        "text")


def _generation_args(body: dict) -> dict:
    return dict(params=parse_sampling(body),
                group=get_field(body, "consumer_group", str, None),
                prompt_max_tokens=get_number(body, "prompt_max_tokens", int, None, minimum=1))


async def generate(request: Request) -> JSONResponse:
    body = await read_json(request)
    texts, is_list = _texts(body)
    _check_count(request, len(texts))
    args = _generation_args(body)
    return_metadata = get_field(body, "return_metadata", bool, False)
    engine = engine_of(request)
    streams: list[GenerationStream] = []
    try:
        for text in texts:  # all submitted, or none: a refusal aborts the ones before it
            streams.append(engine.generate_stream(text, **args))
        await unless_disconnected(request, asyncio.gather(*(_drain(s) for s in streams)))
    finally:
        for stream in streams:
            await stream.aclose()
    results = [s.result for s in streams]
    answer: dict = {"text": [r.text for r in results] if is_list else results[0].text}
    if return_metadata:
        metadata = [r.metadata() for r in results]
        answer["metadata"] = metadata if is_list else metadata[0]
    return JSONResponse(answer)


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work` (the body already read), cancelling it if the client goes away first, so
    an abandoned request frees its slots instead of generating for no one."""
    work = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        abandoned = not work.done()
        if abandoned:
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
    if abandoned:  # nobody hears this answer; it shows in the metrics as 499
        raise ApiError(499, "the client closed the connection", "client_closed_request")
    return work.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _drain(stream: GenerationStream) -> None:
    async for _ in stream:
        pass


async def generate_stream(request: Request) -> EventSourceResponse:
    body = await read_json(request)
    text = get_text(body)
    stream = engine_of(request).generate_stream(text, **_generation_args(body))
    return EventSourceResponse(stream_events(stream))


async def stream_events(stream: GenerationStream):
    """Each text piece as one event (sse-starlette writes a multi-line piece as several `data:`
    lines), then `event: metadata`; a failure after the start is `event: error`. When the client
    goes away, sse-starlette cancels this generator and `finally` aborts the request."""
    try:
        async for piece in stream:
            yield ServerSentEvent(data=piece)
        yield ServerSentEvent(data=json.dumps(stream.result.metadata()), event="metadata")
    except ApiError as exc:
        yield ServerSentEvent(data=json.dumps(exc.body()), event="error")
    finally:
        await stream.aclose()


async def classify(request: Request) -> JSONResponse:
    body = await read_json(request)
    texts = _classify_inputs(body)
    _check_count(request, len(texts))
    group = get_field(body, "consumer_group", str, None)
    rows, labels = await engine_of(request).classify(texts, group)
    return JSONResponse({"result": rows, "labels": labels})


def _classify_inputs(body: dict) -> list[str | tuple[str, str]]:
    value = get_field(body, "text", (str, list))
    if isinstance(value, str):
        return [get_text(body)]
    if not value:
        raise bad_request("'text' must not be an empty list", "text")
    inputs = []
    for item in value:
        if isinstance(item, str) and item.strip():
            inputs.append(item)
        elif (isinstance(item, list) and len(item) == 2
              and all(isinstance(t, str) and t.strip() for t in item)):
            inputs.append((item[0], item[1]))
        else:
            raise bad_request("'text' must be a string, a list of non-empty strings, or a list "
                              "of [text, text_pair] pairs", "text")
    return inputs


async def tokenize(request: Request) -> JSONResponse:
    body = await read_json(request)
    text = get_text(body)
    group = get_field(body, "consumer_group", str, None)
    tokens, ids = engine_of(request).tokenize(text, group)
    return JSONResponse({"result": {"tokens": tokens, "ids": ids}})


async def reader_groups(request: Request) -> JSONResponse:
    engine = engine_of(request)
    config = engine.config
    answer = {}
    for name, info in engine.groups().items():
        limits = {"max_input_len": info.max_input_len,
                  "max_batch_size": (config.max_num_seqs if info.task == "generate"
                                     else config.max_classify_batch)}
        if info.max_new_tokens is not None:
            limits["max_new_tokens"] = info.max_new_tokens
        answer[name] = [{"reader_id": f"{name}-0", "consumer_group": name, "task": info.task,
                         "model_name": info.model_path, "device": info.device,
                         "dtype": info.dtype, **limits}]
    return JSONResponse(answer)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> JSONResponse:
    engine = engine_of(request)
    if engine.draining:
        raise unavailable("the server is draining")
    if not engine.is_running:
        raise unavailable("the engine is not running")
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


def routes() -> list[BaseRoute]:
    return [
        Route("/generate", generate, methods=["POST"]),
        Route("/generate_stream", generate_stream, methods=["POST"]),
        Route("/classify", classify, methods=["POST"]),
        Route("/tokenize", tokenize, methods=["POST"]),
        Route("/reader_groups", reader_groups, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
