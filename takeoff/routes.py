"""The Takeoff API and the operations endpoints. Routes parse, hand over to the engine, answer."""
from __future__ import annotations

import asyncio
import json
from typing import Awaitable, TypeVar

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from takeoff.engine import Engine, GenerationStream
from takeoff.errors import ApiError, bad_request, too_large, unavailable
from takeoff.http import read_json
from takeoff.metrics import CONTENT_TYPE
from takeoff.readers import CLASSIFY, EMBED, GENERATE
from takeoff.schemas import ClassifyBody, DetokenizeBody, EmbedBody, GenerateBody, \
    GenerateStreamBody, TokenizeBody, TokenizeReaderBody, parse

T = TypeVar("T")


def engine_of(request: Request) -> Engine:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise unavailable("the server is still starting")
    return engine


def check_count(engine: Engine, group: str | None, task: str, num_inputs: int) -> None:
    """413 for a list longer than the group can ever take in one go."""
    limit = engine.max_inputs(group, task)
    if num_inputs > limit:
        raise too_large(f"'text' holds {num_inputs} inputs; one request takes at most {limit}",
                        "text")


async def generate(request: Request) -> JSONResponse:
    body = parse(GenerateBody, await read_json(request), request)
    texts = body.text if isinstance(body.text, list) else [body.text]
    engine = engine_of(request)
    check_count(engine, body.consumer_group, GENERATE, len(texts))
    streams: list[GenerationStream] = []
    try:
        for text in texts:  # all submitted, or none: a refusal aborts the ones before it
            streams.append(engine.generate_stream(text, body.sampling_params(),
                                                  body.consumer_group, body.prompt_max_tokens,
                                                  stream=False))
        await unless_disconnected(request, asyncio.gather(*(drain(s) for s in streams)))
    finally:
        for stream in streams:
            await stream.aclose()
    results = [s.result for s in streams]
    is_list = isinstance(body.text, list)
    answer: dict = {"text": [r.text for r in results] if is_list else results[0].text}
    if body.return_metadata:
        metadata = [r.metadata() for r in results]
        answer["metadata"] = metadata if is_list else metadata[0]
    return JSONResponse(answer)


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work` (the body already read), cancelling it if the client goes away first, so
    an abandoned request frees its slots instead of running for no one. Every endpoint that
    answers once, after the engine's work, awaits that work through this."""
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


async def drain(stream: GenerationStream) -> None:
    async for _ in stream:
        pass


async def generate_stream(request: Request) -> EventSourceResponse:
    body = parse(GenerateStreamBody, await read_json(request), request)
    stream = engine_of(request).generate_stream(body.text, body.sampling_params(),
                                                body.consumer_group, body.prompt_max_tokens)
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
    body = parse(ClassifyBody, await read_json(request), request)
    engine = engine_of(request)
    check_count(engine, body.consumer_group, CLASSIFY, len(body.inputs))
    rows, labels = await unless_disconnected(
        request, engine.classify(body.inputs, body.consumer_group))
    return JSONResponse({"result": rows, "labels": labels})


async def tokenize(request: Request) -> JSONResponse:
    body = parse(TokenizeBody, await read_json(request), request)
    tokens, ids = engine_of(request).tokenize(body.text, body.consumer_group)
    return JSONResponse({"result": {"tokens": tokens, "ids": ids}})


async def tokenize_reader(request: Request) -> JSONResponse:
    """Takeoff's /tokenize/{reader_id}: the token strings, their ids and their count."""
    body = parse(TokenizeReaderBody, await read_json(request), request)
    reader = engine_of(request).reader_set.get(request.path_params["reader_id"])
    ids = reader.tokenizer(body.text, verbose=False)["input_ids"]
    tokens = reader.tokenizer.convert_ids_to_tokens(ids)
    return JSONResponse({"tokens": tokens, "ids": ids, "tokens_count": len(ids)})


async def detokenize_reader(request: Request) -> JSONResponse:
    body = parse(DetokenizeBody, await read_json(request), request)
    tokenizer = engine_of(request).reader_set.get(request.path_params["reader_id"]).tokenizer
    ids = body.tokens
    if ids and isinstance(ids[0], str):
        ids = tokenizer.convert_tokens_to_ids(ids)
        if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
            unknown = [t for t, i in zip(body.tokens, ids) if i == tokenizer.unk_token_id]
            if unknown != [tokenizer.unk_token] * len(unknown):
                raise bad_request(f"'tokens' holds pieces this tokenizer does not know: "
                                  f"{unknown[:5]}", "tokens")
    if any(i >= len(tokenizer) for i in ids):
        raise bad_request(f"'tokens' holds ids beyond this tokenizer's {len(tokenizer)}", "tokens")
    return JSONResponse({"text": tokenizer.decode(ids, skip_special_tokens=body.skip_special_tokens)})


async def embed(request: Request) -> JSONResponse:
    body = parse(EmbedBody, await read_json(request), request)
    texts = body.text if isinstance(body.text, list) else [body.text]
    engine = engine_of(request)
    check_count(engine, body.consumer_group, EMBED, len(texts))
    vectors, _ = await unless_disconnected(request, engine.embed(texts, body.consumer_group))
    return JSONResponse({"result": vectors if isinstance(body.text, list) else vectors[0]})


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


async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


def routes() -> list[BaseRoute]:
    return [
        Route("/generate", generate, methods=["POST"]),
        Route("/generate_stream", generate_stream, methods=["POST"]),
        Route("/classify", classify, methods=["POST"]),
        Route("/tokenize", tokenize, methods=["POST"]),
        Route("/tokenize/{reader_id}", tokenize_reader, methods=["POST"]),
        Route("/detokenize/{reader_id}", detokenize_reader, methods=["POST"]),
        Route("/embed", embed, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
