"""Sending the calls of a workload over HTTP and timing each one as its client sees it.

`send` makes one call and returns an `Outcome`: the status, the end-to-end latency, and for a
streamed answer the time to its first piece of text and the gaps between pieces. Pieces that
arrive in one network read share one timestamp, as they would for any client. `open_loop` sends
calls at Poisson arrivals of a given rate, `closed_loop` keeps a fixed number in flight; both
stop at a deadline, cancelling what is still running.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import aiohttp

from benchmarks.workloads import Call
from clients.sse import SSEDecoder

CUT_OFF = "cut off at the time limit"


@dataclass
class Outcome:
    status: int  # HTTP status of the (last) response; 0: no answer (connection error, cut off)
    e2e_s: float | None = None
    ttft_s: float | None = None  # to the first piece of text; the e2e latency when not streamed
    itl_s: list[float] = field(default_factory=list)  # gaps between the pieces of a stream
    num_tokens: int = 0  # generated tokens (the feedback flow: streamed pieces)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


class _Clock:
    """Times one call: its start, and each piece of text as it arrives."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.pieces: list[float] = []

    def piece(self) -> None:
        self.pieces.append(time.perf_counter())

    def outcome(self, status: int, num_tokens: int, error: str | None = None) -> Outcome:
        end = time.perf_counter()
        first = self.pieces[0] if self.pieces else end
        gaps = [b - a for a, b in zip(self.pieces, self.pieces[1:])]
        return Outcome(status, end - self.start, first - self.start, gaps, num_tokens, error)


async def send(http: aiohttp.ClientSession, url: str, call: Call, stream: bool) -> Outcome:
    """One call; a failure of any kind (but cancellation) is an Outcome, never an exception."""
    try:
        if call.kind == "generation":
            if stream:
                return await _generate_stream(http, url, call.body)
            return await _generate(http, url, call.body)
        if call.kind == "classification":
            return await post_timed(http, url + "/classify", call.body)
        return await _feedback(http, url, call.body)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
        return Outcome(0, error=f"{type(exc).__name__}: {exc}")


async def post_timed(http, url: str, body: dict) -> Outcome:
    """One POST answered whole, its time to first token taken to be its end-to-end latency."""
    clock = _Clock()
    async with http.post(url, json=body) as response:
        answer = await response.read()
    return clock.outcome(response.status, 0, _error_of(response.status, answer))


async def _generate(http, url: str, body: dict) -> Outcome:
    clock = _Clock()
    async with http.post(url + "/generate", json={**body, "return_metadata": True}) as response:
        answer = await response.read()
    if response.status != 200:
        return clock.outcome(response.status, 0, _error_of(response.status, answer))
    return clock.outcome(200, json.loads(answer)["metadata"]["generated_tokens"])


async def _generate_stream(http, url: str, body: dict, clock: _Clock | None = None) -> Outcome:
    clock = clock or _Clock()
    async with http.post(url + "/generate_stream", json=body) as response:
        if response.status != 200:
            return clock.outcome(response.status, 0, _error_of(response.status, await response.read()))
        metadata, error = await _read_stream(response, clock, "metadata")
    if error is not None:
        return clock.outcome(200, 0, error)
    return clock.outcome(200, json.loads(metadata)["generated_tokens"])


async def _feedback(http, url: str, body: dict) -> Outcome:
    """The coach's flow: analyze the paragraph, then stream the rewrite of its critical
    sentences. Its first piece is timed from the start of the flow; its tokens are the pieces."""
    clock = _Clock()
    async with http.post(url + "/v1/feedback/analyze", json=body) as response:
        answer = await response.read()
    if response.status != 200:
        return clock.outcome(response.status, 0, _error_of(response.status, answer))
    if json.loads(answer)["kind"] != "critical":
        return clock.outcome(200, 0)
    async with http.post(url + "/v1/feedback/improve", json={**body, "stream": True}) as response:
        if response.status != 200:
            return clock.outcome(response.status, 0, _error_of(response.status, await response.read()))
        _, error = await _read_stream(response, clock, "result")
    return clock.outcome(200, len(clock.pieces), error)


async def _read_stream(response: aiohttp.ClientResponse, clock: _Clock,
                       last_event: str) -> tuple[str | None, str | None]:
    """Reads an SSE answer to its end, timing each text piece; (last event's data, error)."""
    decoder, last = SSEDecoder(), None
    async for chunk in response.content.iter_any():
        for event in decoder.feed(chunk):
            if event.event == "message":
                clock.piece()
            elif event.event == "error":
                return None, f"event: error {event.data[:200]}"
            elif event.event == last_event:
                last = event.data
    if last is None:
        return None, f"the stream ended without its {last_event} event"
    return last, None


def _error_of(status: int, answer: bytes) -> str | None:
    return None if status == 200 else f"HTTP {status}: {answer[:200].decode(errors='replace')}"


SendOne = Callable[[int], Awaitable[Outcome]]


async def open_loop(send_one: SendOne, num_calls: int, rate: float, seed: int,
                    deadline: float, on_done: Callable[[], None]) -> list[Outcome]:
    """Call i at the i-th arrival of a Poisson process of `rate` calls/s (the first at once);
    calls due after the deadline are not sent."""
    rng, loop = random.Random(seed), asyncio.get_running_loop()
    start, due, tasks = loop.time(), 0.0, []
    for i in range(num_calls):
        if start + due > deadline:
            break
        await asyncio.sleep(max(0.0, start + due - loop.time()))
        tasks.append(asyncio.create_task(_reported(send_one(i), on_done)))
        due += rng.expovariate(rate)
    return await _until(tasks, deadline)


async def closed_loop(send_one: SendOne, num_calls: int, concurrency: int, deadline: float,
                      on_done: Callable[[], None]) -> list[Outcome]:
    """`concurrency` clients, each sending its next call when its last one is answered."""
    indices = iter(range(num_calls))
    outcomes: list[Outcome] = []

    async def client() -> None:
        for i in indices:  # one iterator shared: each call is sent once
            try:
                outcomes.append(await _reported(send_one(i), on_done))
            except asyncio.CancelledError:
                outcomes.append(Outcome(0, error=CUT_OFF))
                raise

    await _until([asyncio.create_task(client()) for _ in range(concurrency)], deadline)
    return outcomes


async def _reported(call: Awaitable[Outcome], on_done: Callable[[], None]) -> Outcome:
    outcome = await call
    on_done()
    return outcome


async def _until(tasks: list[asyncio.Task], deadline: float) -> list:
    """The tasks' results; those still running at the deadline are cancelled (and an open-loop
    call then counts as cut off)."""
    timeout = max(0.0, deadline - asyncio.get_running_loop().time())
    if tasks:
        _, running = await asyncio.wait(tasks, timeout=timeout)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    return [t.result() if not t.cancelled() else Outcome(0, error=CUT_OFF) for t in tasks]
