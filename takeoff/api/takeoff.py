"""The Takeoff API. Routes parse, hand over to the engine, answer."""
from __future__ import annotations

import asyncio
import json

from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from takeoff.api.http import check_count, drain, engine_of, read_json, unless_disconnected
from takeoff.api.schemas import parse
from takeoff.api.sse import EventStream
from takeoff.api.takeoff_schemas import ClassifyBody, DetokenizeBody, EmbedBody, GenerateBody, \
    GenerateStreamBody, TokenizeBody, TokenizeReaderBody
from takeoff.engine.engine import GenerationStream
from takeoff.engine.readers import CLASSIFY, EMBED, GENERATE
from takeoff.errors import bad_request


async def generate(request: Request) -> JSONResponse:
    body = parse(GenerateBody, await read_json(request))
    texts = body.text if isinstance(body.text, list) else [body.text]
    engine = engine_of(request)
    check_count(engine, body.consumer_group, GENERATE, len(texts))
    await engine.compile_grammar(body.sampling(), body.consumer_group)
    streams: list[GenerationStream] = []
    try:
        for text in texts:  # all submitted, or none: a refusal aborts the ones before it
            streams.append(engine.generate_stream(text, body.sampling(),
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


async def generate_stream(request: Request) -> EventStream:
    body = parse(GenerateStreamBody, await read_json(request))
    await engine_of(request).compile_grammar(body.sampling(), body.consumer_group)
    stream = engine_of(request).generate_stream(body.text, body.sampling(),
                                                body.consumer_group, body.prompt_max_tokens)
    return EventStream(stream_events(stream), stream.aclose)


async def stream_events(stream: GenerationStream):
    """Each text piece as one event (sse-starlette writes a multi-line piece as several `data:`
    lines), then `event: metadata`."""
    async for piece in stream:
        yield ServerSentEvent(data=piece)
    yield ServerSentEvent(data=json.dumps(stream.result.metadata()), event="metadata")


async def classify(request: Request) -> JSONResponse:
    body = parse(ClassifyBody, await read_json(request))
    engine = engine_of(request)
    check_count(engine, body.consumer_group, CLASSIFY, len(body.inputs))
    rows, labels = await unless_disconnected(
        request, engine.classify(body.inputs, body.consumer_group))
    return JSONResponse({"result": rows, "labels": labels})


async def tokenize(request: Request) -> JSONResponse:
    body = parse(TokenizeBody, await read_json(request))
    tokens, ids = engine_of(request).tokenize(body.text, body.consumer_group)
    return JSONResponse({"result": {"tokens": tokens, "ids": ids}})


async def tokenize_reader(request: Request) -> JSONResponse:
    """Takeoff's /tokenize/{reader_id}: the token strings, their ids and their count."""
    body = parse(TokenizeReaderBody, await read_json(request))
    reader = engine_of(request).reader_set.get(request.path_params["reader_id"])
    ids = reader.tokenizer(body.text, verbose=False)["input_ids"]
    tokens = reader.tokenizer.convert_ids_to_tokens(ids)
    return JSONResponse({"tokens": tokens, "ids": ids, "tokens_count": len(ids)})


async def detokenize_reader(request: Request) -> JSONResponse:
    body = parse(DetokenizeBody, await read_json(request))
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
    body = parse(EmbedBody, await read_json(request))
    texts = body.text if isinstance(body.text, list) else [body.text]
    engine = engine_of(request)
    check_count(engine, body.consumer_group, EMBED, len(texts))
    vectors, _ = await unless_disconnected(request, engine.embed(texts, body.consumer_group))
    return JSONResponse({"result": vectors if isinstance(body.text, list) else vectors[0]})


def routes() -> list[BaseRoute]:
    return [
        Route("/generate", generate, methods=["POST"]),
        Route("/generate_stream", generate_stream, methods=["POST"]),
        Route("/classify", classify, methods=["POST"]),
        Route("/tokenize", tokenize, methods=["POST"]),
        Route("/tokenize/{reader_id}", tokenize_reader, methods=["POST"]),
        Route("/detokenize/{reader_id}", detokenize_reader, methods=["POST"]),
        Route("/embed", embed, methods=["POST"]),
    ]
