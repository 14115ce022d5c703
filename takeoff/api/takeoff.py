"""The Takeoff API. Routes parse, submit to the engine, answer; `async with engine.submit(...)`
aborts what the route leaves unfinished, and an EventStream closes what it streams."""
from __future__ import annotations

import json
import logging

from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from scheduler.request import Task
from takeoff.api.chat_template import Message, template_of
from takeoff.api.http import check_count, engine_of, read_json, unless_disconnected
from takeoff.api.schemas import parse
from takeoff.api.sse import EventStream
from takeoff.api.takeoff_schemas import ChatTemplateBody, ClassifyBody, DetokenizeBody, \
    EmbedBody, GenerateBody, GenerateStreamBody, TokenizeBody, TokenizeReaderBody
from takeoff.engine.readers import Reader
from takeoff.engine.stream import RequestStream
from takeoff.errors import bad_request

logger = logging.getLogger(__name__)


async def generate(request: Request) -> JSONResponse:
    body = parse(GenerateBody, await read_json(request))
    engine = engine_of(request)
    check_count(engine, body.consumer_group, Task.GENERATE, len(body.texts))
    async with engine.submit(Task.GENERATE, body.texts, body.consumer_group, body.sampling(),
                             prompt_max_tokens=body.prompt_max_tokens) as work:
        results = await unless_disconnected(request, work.results())
    one = not isinstance(body.text, list)
    many = work.sampling.num_return_sequences > 1  # each input's answer a list, best first
    texts = [[c.text for c in r.choices()] if many else r.text for r in results]
    answer: dict = {"text": texts[0] if one else texts}
    if body.return_metadata:
        metadata = [[c.metadata() for c in r.choices()] if many else r.metadata()
                    for r in results]
        answer["metadata"] = metadata[0] if one else metadata
    return JSONResponse(answer)


async def generate_stream(request: Request) -> EventStream:
    body = parse(GenerateStreamBody, await read_json(request))
    work = await engine_of(request).submit(Task.GENERATE, [body.text], body.consumer_group,
                                           body.sampling(), stream=True,
                                           prompt_max_tokens=body.prompt_max_tokens)
    return EventStream(stream_events(work.streams[0]), work)


async def stream_events(stream: RequestStream):
    """Each text piece as one event (sse-starlette writes a multi-line piece as several `data:`
    lines), then `event: metadata`. A beam search's one piece is its best sequence, sent when
    the search ends; the metadata are that sequence's."""
    async for piece in stream:
        yield ServerSentEvent(data=piece)
    yield ServerSentEvent(data=json.dumps(stream.result.choices()[0].metadata()), event="metadata")


async def classify(request: Request) -> JSONResponse:
    body = parse(ClassifyBody, await read_json(request))
    engine = engine_of(request)
    check_count(engine, body.consumer_group, Task.CLASSIFY, len(body.inputs))
    async with engine.submit(Task.CLASSIFY, body.inputs, body.consumer_group) as work:
        rows = await unless_disconnected(request, work.results())
    return JSONResponse({"result": rows, "labels": work.labels})


async def embed(request: Request) -> JSONResponse:
    body = parse(EmbedBody, await read_json(request))
    engine = engine_of(request)
    check_count(engine, body.consumer_group, Task.EMBED, len(body.texts))
    async with engine.submit(Task.EMBED, body.texts, body.consumer_group) as work:
        vectors = await unless_disconnected(request, work.results())
    return JSONResponse({"result": vectors if isinstance(body.text, list) else vectors[0]})


def _tokens(reader: Reader, text: str) -> tuple[list[str], list[int]]:
    ids = reader.tokenizer(text, verbose=False)["input_ids"]
    return reader.tokenizer.convert_ids_to_tokens(ids), ids


async def tokenize(request: Request) -> JSONResponse:
    body = parse(TokenizeBody, await read_json(request))
    tokens, ids = _tokens(engine_of(request).reader_set.pick(body.consumer_group, None), body.text)
    return JSONResponse({"result": {"tokens": tokens, "ids": ids}})


async def tokenize_reader(request: Request) -> JSONResponse:
    """Takeoff's /tokenize/{reader_id}: the token strings, their ids and their count."""
    body = parse(TokenizeReaderBody, await read_json(request))
    reader = engine_of(request).reader_set.get(request.path_params["reader_id"])
    tokens, ids = _tokens(reader, body.text)
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


async def chat_template(request: Request) -> JSONResponse:
    """Takeoff's /chat_template/{reader_id}: each conversation as the reader's group's chat
    template turns it into the model's input."""
    body = parse(ChatTemplateBody, await read_json(request))
    engine = engine_of(request)
    reader = engine.reader_set.get(request.path_params["reader_id"])
    if reader.info.task is not Task.GENERATE:
        raise bad_request(f"reader '{reader.reader_id}' serves {reader.info.task.value} "
                          "requests; only a generator has a chat template", "reader_id")
    if body.add_generation_prompt:
        logger.warning("add_generation_prompt: reader %s's chat template has no generation "
                       "prompt; it is returned unchanged", reader.reader_id)
    template = template_of(engine.config, reader.info.group)
    try:
        texts = [template([Message(m.role, m.content) for m in conversation])
                 for conversation in body.inputs]
    except ValueError as exc:
        raise bad_request(str(exc), "inputs") from None
    return JSONResponse({"messages": texts})


def routes() -> list[BaseRoute]:
    return [
        Route("/generate", generate, methods=["POST"]),
        Route("/generate_stream", generate_stream, methods=["POST"]),
        Route("/classify", classify, methods=["POST"]),
        Route("/tokenize", tokenize, methods=["POST"]),
        Route("/tokenize/{reader_id}", tokenize_reader, methods=["POST"]),
        Route("/detokenize/{reader_id}", detokenize_reader, methods=["POST"]),
        Route("/embed", embed, methods=["POST"]),
        Route("/chat_template/{reader_id}", chat_template, methods=["POST"]),
    ]
