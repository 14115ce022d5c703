"""Dynamic batching as one would write it by hand: collect, run the batch, answer everyone.

The first request to arrive opens a batch; requests join it for up to `max_wait_ms` or until
`max_batch_size` are in; then the whole batch runs as one call and every request gets its own
answer. One batch runs at a time: requests that arrive meanwhile wait for the next one. Nothing
joins a running batch (that is what continuous batching adds).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

RunBatch = Callable[[list[Any]], Awaitable[list[Any]]]


@dataclass
class _Waiting:
    item: Any
    answer: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class DynamicBatcher:
    def __init__(self, run_batch: RunBatch, max_batch_size: int, max_wait_ms: float) -> None:
        self.run_batch = run_batch  # items -> one result per item, in order
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, item: Any) -> Any:
        """The item's result once its batch has run (its exception if the batch failed). A
        caller that is cancelled before its batch starts is left out of it."""
        waiting = _Waiting(item)
        self._queue.put_nowait(waiting)
        return await waiting.answer

    async def _serve(self) -> None:
        while True:
            batch = [w for w in await self._collect() if not w.answer.cancelled()]
            if not batch:
                continue
            try:
                results = await self.run_batch([w.item for w in batch])
            except Exception as exc:  # every request of the failed batch gets the error
                for waiting in batch:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(exc)
                continue
            for waiting, result in zip(batch, results):
                if not waiting.answer.done():
                    waiting.answer.set_result(result)

    async def _collect(self) -> list[_Waiting]:
        batch = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            if not self._queue.empty():  # already waiting: no reason to wait for them
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch
