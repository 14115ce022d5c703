"""What both baseline servers share: the Takeoff API subset the load benchmark sends, over
dynamic batching, and the command line.

    POST /generate  {"text": str, "max_new_tokens": 128, "min_new_tokens": 0,
                     "return_metadata": false}  ->  {"text": str, "metadata": {...}}
    POST /classify  {"text": str | [str]}  ->  {"result": [[p, ...]], "labels": [...]}
    GET  /health, GET /ready

Greedy decoding only (a request asking for sampling is a 400). There is no /generate_stream:
an answer leaves when its whole batch has finished. Streaming through `TextIteratorStreamer`
works for one sequence at a time, which would give up the batching these servers exist to
show, so it is left out; the load benchmark takes their time to first token to be the
end-to-end latency.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks.baselines.batching import DynamicBatcher, RunBatch

MAX_NEW_TOKENS = 512


@dataclass(frozen=True)
class GenerationInput:
    text: str
    max_new_tokens: int
    min_new_tokens: int


@dataclass(frozen=True)
class GenerationOutput:
    text: str
    input_tokens: int
    generated_tokens: int  # the final EOS included, when there is one (as takeoff counts)
    finish_reason: str  # "length" | "eos_token"


class BadRequest(ValueError):
    pass


def output_from_ids(item: GenerationInput, ids: list[int], input_tokens: int, eos_token_id: int,
                    decode: Callable[[list[int]], str]) -> GenerationOutput:
    """One request's answer from its row of a batch that ran for the batch's longest request:
    cut to its own max_new_tokens, and after its first EOS."""
    ids = ids[:item.max_new_tokens]
    finish_reason = "length"
    if eos_token_id in ids:
        ids = ids[:ids.index(eos_token_id) + 1]
        finish_reason = "eos_token"
    return GenerationOutput(decode(ids), input_tokens, len(ids), finish_reason)


def run_in_worker(work: Callable[[list[Any]], list[Any]]) -> RunBatch:
    """`work` (blocking) on a thread of its own, always the same one: OpenMP keeps a team of
    compute threads per calling thread, so batches from changing threads would start more."""
    executor = ThreadPoolExecutor(max_workers=1)

    async def run(items: list[Any]) -> list[Any]:
        return await asyncio.get_running_loop().run_in_executor(executor, work, items)
    return run


def build_app(generate: RunBatch | None, classify: RunBatch | None = None,
              labels: list[str] | None = None, max_batch_size: int = 32,
              max_wait_ms: float = 10) -> Starlette:
    """generate: GenerationInputs -> GenerationOutputs; classify: texts -> probability rows."""
    batchers = {name: DynamicBatcher(run, max_batch_size, max_wait_ms)
                for name, run in (("generate", generate), ("classify", classify)) if run}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        for batcher in batchers.values():
            batcher.start()
        yield
        for batcher in batchers.values():
            await batcher.stop()

    async def generate_route(request: Request) -> JSONResponse:
        body = await _body(request)
        output = await batchers["generate"].submit(generation_input(body))
        answer = {"text": output.text}
        if body.get("return_metadata"):
            answer["metadata"] = {k: v for k, v in asdict(output).items() if k != "text"}
        return JSONResponse(answer)

    async def classify_route(request: Request) -> JSONResponse:
        texts = _texts(await _body(request))
        rows = await asyncio.gather(*(batchers["classify"].submit(t) for t in texts))
        return JSONResponse({"result": rows, "labels": labels})

    async def ok(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    routes = [Route("/health", ok), Route("/ready", ok)]
    if generate:
        routes.append(Route("/generate", _answering_400(generate_route), methods=["POST"]))
    if classify:
        routes.append(Route("/classify", _answering_400(classify_route), methods=["POST"]))
    return Starlette(routes=routes, lifespan=lifespan)


def _answering_400(route):
    async def answer(request: Request) -> JSONResponse:
        try:
            return await route(request)
        except BadRequest as exc:
            return JSONResponse({"error": {"message": str(exc), "type": "invalid_request_error",
                                           "param": None}}, status_code=400)
    return answer


async def _body(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def generation_input(body: dict) -> GenerationInput:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("'text' must be a non-empty string")
    if body.get("sampling_topk", 1) not in (1, None):
        raise BadRequest("this server decodes greedily only (sampling_topk 1)")
    max_new_tokens = body.get("max_new_tokens") or 128
    min_new_tokens = body.get("min_new_tokens") or 0
    if not (isinstance(max_new_tokens, int) and 1 <= max_new_tokens <= MAX_NEW_TOKENS):
        raise BadRequest(f"'max_new_tokens' must be an integer from 1 to {MAX_NEW_TOKENS}")
    if not (isinstance(min_new_tokens, int) and 0 <= min_new_tokens <= max_new_tokens):
        raise BadRequest("'min_new_tokens' must be an integer from 0 to max_new_tokens")
    return GenerationInput(text, max_new_tokens, min_new_tokens)


def _texts(body: dict) -> list[str]:
    text = body.get("text")
    texts = [text] if isinstance(text, str) else text
    if not (isinstance(texts, list) and texts and all(isinstance(t, str) and t for t in texts)):
        raise BadRequest("'text' must be a string or a list of non-empty strings")
    return texts


def build_parser(description: str) -> argparse.ArgumentParser:
    """The flags both baselines take; each adds its own."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="Hugging Face T5 directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3100)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=10.0,
                        help="how long the first request of a batch waits for others")
    parser.add_argument("--threads", type=int, default=None, help="compute threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    return parser


def serve(app: Starlette, args: argparse.Namespace) -> None:
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
