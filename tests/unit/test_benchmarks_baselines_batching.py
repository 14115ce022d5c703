"""The baselines' dynamic batcher: who shares a batch, and what each caller gets back."""
from __future__ import annotations

import asyncio

import pytest

from benchmarks.baselines.batching import DynamicBatcher


class Recorder:
    """A batch function that doubles each item and remembers the batches it was given."""

    def __init__(self, pause_s: float = 0.0, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.pause_s = pause_s
        self.fail = fail

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(self.pause_s)
        if self.fail:
            raise RuntimeError("the model failed")
        return [2 * item for item in items]


async def started(run, max_batch_size: int, max_wait_ms: float) -> DynamicBatcher:
    batcher = DynamicBatcher(run, max_batch_size, max_wait_ms)
    batcher.start()
    return batcher


async def test_requests_arriving_together_share_batches_of_at_most_the_limit():
    run = Recorder()
    batcher = await started(run, max_batch_size=4, max_wait_ms=50)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(6)))
    await batcher.stop()
    assert results == [0, 2, 4, 6, 8, 10]
    assert run.batches == [[0, 1, 2, 3], [4, 5]]


async def test_a_batch_waits_at_most_max_wait_for_company():
    run = Recorder()
    batcher = await started(run, max_batch_size=8, max_wait_ms=20)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.2)  # well past the wait: the first batch has run alone
    assert await batcher.submit(2) == 4
    assert await first == 2
    await batcher.stop()
    assert run.batches == [[1], [2]]


async def test_requests_arriving_while_a_batch_runs_wait_for_the_next():
    run = Recorder(pause_s=0.1)
    batcher = await started(run, max_batch_size=8, max_wait_ms=1)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.03)
    later = await asyncio.gather(batcher.submit(2), batcher.submit(3))
    assert (await first, later) == (2, [4, 6])
    await batcher.stop()
    assert run.batches == [[1], [2, 3]]


async def test_a_failed_batch_fails_each_of_its_requests():
    batcher = await started(Recorder(fail=True), max_batch_size=4, max_wait_ms=10)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    await batcher.stop()
    assert [str(r) for r in results] == ["the model failed"] * 2


async def test_a_caller_that_left_before_its_batch_is_left_out():
    run = Recorder(pause_s=0.1)
    batcher = await started(run, max_batch_size=8, max_wait_ms=1)
    running = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.03)
    leaving = asyncio.ensure_future(batcher.submit(2))
    staying = asyncio.ensure_future(batcher.submit(3))
    await asyncio.sleep(0)
    leaving.cancel()
    assert (await running, await staying) == (2, 6)
    with pytest.raises(asyncio.CancelledError):
        await leaving
    await batcher.stop()
    assert run.batches == [[1], [3]]
