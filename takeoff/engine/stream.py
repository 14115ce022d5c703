"""What a generation hands back to its caller: a stream of text pieces, then a result."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable

from takeoff.errors import ApiError


class EngineError(ApiError):
    """A request that failed inside the engine (a failed step, a queue timeout, a shutdown)."""


@dataclass(frozen=True)
class GenerationResult:
    text: str
    input_tokens: int
    generated_tokens: int  # the final EOS included, when there is one
    finish_reason: str  # "length" | "eos_token" | "stop_sequence"

    def metadata(self) -> dict:
        return {"input_tokens": self.input_tokens, "generated_tokens": self.generated_tokens,
                "finish_reason": self.finish_reason}


class GenerationStream:
    """Async iterator of text pieces. After it ends, `.result` is the GenerationResult; a failure
    inside the engine raises EngineError from it. `aclose()`, or cancelling the task iterating
    it, aborts the request."""

    def __init__(self, request_id: str, num_prompt_tokens: int,
                 abort: Callable[[str], None]) -> None:
        self.request_id = request_id
        self.num_prompt_tokens = num_prompt_tokens
        self.result: GenerationResult | None = None
        self._abort = abort
        self._items: asyncio.Queue[str | GenerationResult | ApiError] = asyncio.Queue()
        self._done = False

    def put(self, item: str | GenerationResult | ApiError) -> None:
        self._items.put_nowait(item)

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._items.get()
        except asyncio.CancelledError:
            await self.aclose()
            raise
        if isinstance(item, str):
            return item
        self._done = True
        if isinstance(item, ApiError):
            raise item
        self.result = item
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Abort the request unless it already finished (safe to call more than once)."""
        if not self._done:
            self._done = True
            self._abort(self.request_id)


def engine_error(output) -> EngineError:
    """The API error for a request that finished without a result (a core EngineOutput)."""
    if output.finish_reason == "aborted":
        return EngineError(503, "the request was cancelled", "service_unavailable")
    if output.never_scheduled:  # it timed out in the queue
        return EngineError(503, f"the request waited too long in the queue ({output.error})",
                           "timeout_error", headers={"Retry-After": "1"})
    return EngineError(500, output.error or "the engine failed", "engine_error")
