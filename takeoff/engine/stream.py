"""What a request hands back to its caller on the event loop: the text pieces of a streaming
generation as they are decoded, then one result (or the error that ended it)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Union

from takeoff.errors import ApiError


class EngineError(ApiError):
    """A request that failed inside the engine (a failed step, a queue timeout, a shutdown)."""


@dataclass(frozen=True)
class GenerationResult:
    text: str
    input_tokens: int
    generated_tokens: int  # the final EOS included, when there is one; every returned sequence's
    finish_reason: str  # "length" | "eos_token" | "stop_sequence"
    # A beam search's: HF's sequences_scores (sum of log-probabilities / length ** length_penalty).
    score: float | None = None
    # A beam search's returned sequences, best first, each a result of its own (the first is
    # this one's text); empty otherwise.
    sequences: tuple[GenerationResult, ...] = ()

    def metadata(self) -> dict:
        data = {"input_tokens": self.input_tokens, "generated_tokens": self.generated_tokens,
                "finish_reason": self.finish_reason}
        if self.score is not None:
            data["score"] = self.score
        return data

    def choices(self) -> list[GenerationResult]:
        """One result per returned sequence, best first: a beam search's, or this one."""
        return list(self.sequences) or [self]


# A generation's result, or a one-pass request's row: label probabilities (in the classifier's
# label order) or an embedding.
Result = Union[GenerationResult, list]


class RequestStream:
    """One request's output: an async iterator of text pieces (none unless it is a streaming
    generation), after which `.result` holds its Result; a failure inside the engine raises
    EngineError from it. `close()`, or cancelling the task that reads it, aborts the request
    unless it has finished."""

    def __init__(self, request_id: str, reader_id: str, num_prompt_tokens: int,
                 abort: Callable[[str], None], num_rows: int = 1) -> None:
        self.request_id = request_id
        self.reader_id = reader_id
        self.num_prompt_tokens = num_prompt_tokens
        self.num_rows = num_rows  # what it counts for admission: a beam search's num_beams
        self.result: Result | None = None
        self._abort = abort
        self._items: asyncio.Queue[str | Result | ApiError] = asyncio.Queue()
        self._done = False

    def put(self, item: str | Result | ApiError) -> None:
        """A text piece, then the result or the error (the engine calls this, on the loop)."""
        self._items.put_nowait(item)

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._items.get()
        except asyncio.CancelledError:
            self.close()
            raise
        if isinstance(item, str):
            return item
        self._done = True
        if isinstance(item, ApiError):
            raise item
        self.result = item
        raise StopAsyncIteration

    async def finished(self) -> Result:
        """The result, once the request has finished (any pieces before it are skipped)."""
        async for _ in self:
            pass
        return self.result

    def close(self) -> None:
        """Abort the request unless it already finished (safe to call more than once)."""
        if not self._done:
            self._done = True
            self._abort(self.request_id)


async def merged(streams: list[RequestStream]) -> AsyncIterator[tuple[int, str | None]]:
    """(index, piece) from all streams as they come, and (index, None) when one has ended; the
    first failure of any stream is raised, as an ApiError."""
    if len(streams) == 1:
        async for piece in streams[0]:
            yield 0, piece
        yield 0, None
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(index: int, stream: RequestStream) -> None:
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


def engine_error(output) -> EngineError:
    """The API error for a request that finished without a result (a core EngineOutput)."""
    if output.finish_reason == "aborted":
        return EngineError(503, "the request was cancelled", "service_unavailable")
    if output.never_scheduled:  # it timed out in the queue
        return EngineError(503, f"the request waited too long in the queue ({output.error})",
                           "timeout_error", headers={"Retry-After": "1"})
    return EngineError(500, output.error or "the engine failed", "engine_error")
