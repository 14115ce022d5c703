"""What a generation hands back to its caller: a stream of text pieces, then a result."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable

from scheduler.request import Request
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

    def __init__(self, request: Request, abort: Callable[[str], None]) -> None:
        self.request = request
        self.result: GenerationResult | None = None
        self.num_tokens_seen = 0  # engine bookkeeping for the latency metrics
        self.last_token_time = 0.0
        self._abort = abort
        self._items: asyncio.Queue[str | GenerationResult | ApiError] = asyncio.Queue()
        self._done = False

    @property
    def request_id(self) -> str:
        return self.request.request_id

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
            self._abort(self.request.request_id)
