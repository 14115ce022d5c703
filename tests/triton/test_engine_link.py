"""The adapter between PyTriton's event loops and the Engine's: pieces cross over in order, and
a caller that stops reading aborts the request within a step (no PyTriton needed)."""
from __future__ import annotations

import asyncio

from scheduler.sampling_params import SamplingParams
from takeoff.app import build_runner
from takeoff.config import ServerConfig
from takeoff.readers import load_readers
from takeoff.triton.engine_link import EngineLink
from tests.runners import SlowRunner
from tests.triton.conftest import wait_until


class StepCounter(SlowRunner):
    num_steps = 0

    def execute(self, scheduler_output, between_layers=None):
        StepCounter.num_steps += 1
        return super().execute(scheduler_output, between_layers)


def test_a_caller_that_stops_reading_aborts_its_request_within_a_step(tiny_t5_dir):
    config = ServerConfig(model=str(tiny_t5_dir), dtype="float32", max_num_seqs=2,
                          max_new_tokens=256, log_level="warning")
    link = EngineLink(config, load_readers(config),
                      lambda config, reader: StepCounter(build_runner(config, reader)))
    link.start()
    try:
        async def read_three_pieces() -> tuple[list[str], int]:
            params = SamplingParams(max_new_tokens=200, min_new_tokens=200)
            pieces = link.generate("a long one", params, "primary", None)
            read = [await anext(pieces) for _ in range(3)]
            await pieces.aclose()
            return read, StepCounter.num_steps

        # On an event loop of its own, as PyTriton's callables are.
        read, steps_at_close = asyncio.run(read_three_pieces())
        assert len(read) == 3 and all(isinstance(piece, str) for piece in read)
        assert wait_until(lambda: link.num_slots_in_use() == 0, timeout_s=30)
        assert StepCounter.num_steps - steps_at_close <= 2  # not the 197 tokens left
    finally:
        link.stop()
