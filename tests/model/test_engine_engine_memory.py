"""Memory that stays flat: a few thousand short requests through the engine, in-process, leave
no per-request object alive and no entry behind in any of the engine's tables."""
from __future__ import annotations

import asyncio
import gc

from kernels.sampling import SlotState
from scheduler.detokenizer import IncrementalDetokenizer
from scheduler.request import Request, Task
from scheduler.sampling_params import SamplingRequest
from takeoff.app import build_runner, build_runners
from takeoff.config import ServerConfig
from takeoff.engine.engine import Engine
from takeoff.engine.readers import load_readers
from takeoff.engine.stream import RequestStream
from takeoff.engine.submission import Submission

PER_REQUEST = (Request, RequestStream, Submission, IncrementalDetokenizer, SlotState)
SHORT = SamplingRequest({"max_new_tokens": 2})


def live(types=PER_REQUEST) -> dict[str, int]:
    gc.collect()
    counts = dict.fromkeys((t.__name__ for t in types), 0)
    for item in gc.get_objects():
        if isinstance(item, types):
            counts[type(item).__name__] += 1
    return counts


async def one(engine: Engine, index: int) -> None:
    """Generations (some streamed, some left after their first piece, some with a regex) and
    classifications of pairs, as a mixed load sends them."""
    if index % 4 == 3:
        async with engine.submit(Task.CLASSIFY, [f"sentence {index}", ("a", "b")]) as work:
            await work.results()
        return
    regex = {"regex": "[a-z]{1,3}"} if index % 8 == 2 else {}
    sampling = SamplingRequest({"max_new_tokens": 2, **regex})
    async with engine.submit(Task.GENERATE, [f"prompt {index}"], sampling=sampling,
                             stream=index % 2 == 1) as work:
        if index % 8 == 1:  # the client leaves at the first piece
            async for _ in work.streams[0]:
                break
        else:
            await work.results()


async def test_thousands_of_requests_leave_nothing_behind(tiny_t5_dir, tiny_classifier_dir):
    config = ServerConfig(model=str(tiny_t5_dir), classifier=str(tiny_classifier_dir),
                          max_num_seqs=8, max_queue=64, dtype="float32")
    readers = load_readers(config)
    engine = Engine(config, readers, build_runners(config, readers, build_runner))
    engine.start()
    try:
        for first in range(0, 3000, 50):  # waves of 50 at once
            await asyncio.gather(*(one(engine, i) for i in range(first, first + 50)))
        runners = [lane.runner for lane in engine.core.lanes.values() if lane.holds_slots]
        for _ in range(100):  # the last aborts and freed slots reach the core within a step
            if engine.snapshot.num_unfinished == 0 and not any(r.slots for r in runners):
                break
            await asyncio.sleep(0.02)
        assert engine.is_idle and engine.snapshot.num_unfinished == 0
        assert engine.snapshot.num_slots_in_use == 0
        assert not engine.core._streaming and not engine.core._lane_of
        assert not any(runner.slots for runner in runners)  # freed, not held until a next one
        assert live() == dict.fromkeys((t.__name__ for t in PER_REQUEST), 0)
    finally:
        await engine.stop()
