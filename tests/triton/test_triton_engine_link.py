"""The adapter between PyTriton's event loops and the Engine: a request's parameters are resolved
as /generate_stream's (the default lowered to --max-new-tokens), pieces cross over in order, and
a caller that stops reading aborts the request within a step (no PyTriton needed)."""
from __future__ import annotations

import asyncio

import pytest

from scheduler.sampling_params import SamplingRequest
from takeoff.app import build_runner
from takeoff.config import ServerConfig
from takeoff.engine.readers import load_readers
from takeoff.triton.engine_link import EngineLink
from takeoff.triton.parameters import generate_body
from tests.runners import SlowRunner
from tests.server.test_api_takeoff import PROMPTS, hf_greedy  # noqa: F401 (a fixture)
from tests.triton.conftest import wait_until

CAP = 20  # --max-new-tokens: below /generate_stream's default of 128


class StepCounter(SlowRunner):
    num_steps = 0

    def execute(self, scheduler_output, between_layers=None):
        StepCounter.num_steps += 1
        return super().execute(scheduler_output, between_layers)


@pytest.fixture(scope="module")
def link(tiny_t5_dir):
    config = ServerConfig(model=str(tiny_t5_dir), dtype="float32", max_num_seqs=2,
                          max_new_tokens=CAP, log_level="warning")
    link = EngineLink(config, load_readers(config),
                      lambda config, reader: StepCounter(build_runner(config, reader)))
    link.start()
    yield link
    link.stop()


def test_no_max_new_tokens_means_the_default_lowered_to_the_cap(link, hf_greedy):
    async def joined(parameters: dict) -> str:
        body = generate_body(PROMPTS[0], parameters)
        return "".join([piece async for piece in link.generate(body.text, body.sampling(),
                                                                "primary", None)])

    # On an event loop of its own, as PyTriton's callables are.
    assert asyncio.run(joined({})) == hf_greedy(PROMPTS[0], CAP)
    assert asyncio.run(joined({"max_new_tokens": 5})) == hf_greedy(PROMPTS[0], 5)
    assert hf_greedy(PROMPTS[0], CAP) != hf_greedy(PROMPTS[0], 5)


def test_a_caller_that_stops_reading_aborts_its_request_within_a_step(link):
    async def read_three_pieces() -> tuple[list[str], int]:
        sampling = SamplingRequest({"max_new_tokens": CAP, "min_new_tokens": CAP})
        pieces = link.generate("a long one", sampling, "primary", None)
        read = [await anext(pieces) for _ in range(3)]
        await pieces.aclose()
        return read, StepCounter.num_steps

    read, steps_at_close = asyncio.run(read_three_pieces())
    assert len(read) == 3 and all(isinstance(piece, str) for piece in read)
    assert wait_until(lambda: link.num_slots_in_use() == 0, timeout_s=30)
    assert StepCounter.num_steps - steps_at_close <= 2  # not the 17 tokens left
