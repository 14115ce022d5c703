"""Model runners for server tests: the real one wrapped to be slow, or to fail on demand.

Each is a `runner_factory` for `server_factory` (called once per reader); `generator_runner`
finds the generator's wrapped runner of a running server.
"""
from __future__ import annotations

import threading
import time

STEP_DELAY_S = 0.02  # 200 tokens take about 4 s: long enough to disconnect mid-answer


class SlowRunner:
    """The real runner, sleeping before each step."""

    def __init__(self, runner, delay_s: float = STEP_DELAY_S):
        self.runner = runner
        self.delay_s = delay_s

    def execute(self, scheduler_output, between_layers=None):
        time.sleep(self.delay_s)
        return self.runner.execute(scheduler_output, between_layers)

    def __getattr__(self, name):
        return getattr(self.runner, name)


class FailingRunner:
    """The real runner, except that every step raises while `broken` is set (a broken device),
    any step that holds a request with a poisoned prompt raises (an input that breaks the model),
    and a request with a garbling prompt gets a token id no tokenizer can decode (an output that
    breaks the detokenizer)."""

    GARBAGE_TOKEN = -3

    def __init__(self, runner) -> None:
        self.runner = runner
        self.broken = threading.Event()
        self.poisoned_prompts: set[tuple[int, ...]] = set()
        self.garbling_prompts: set[tuple[int, ...]] = set()
        self._marked: dict[str, str] = {}  # request id -> "poisoned" | "garbling"

    def execute(self, scheduler_output, between_layers=None):
        if self.broken.is_set():
            raise RuntimeError("simulated device failure")
        for item in scheduler_output.prefill:
            for mark, prompts in (("poisoned", self.poisoned_prompts),
                                  ("garbling", self.garbling_prompts)):
                if tuple(item.prompt_ids) in prompts:
                    self._marked[item.request_id] = mark
        ids = {p.request_id for p in scheduler_output.prefill}
        ids |= {self.runner.slots[s].request_id for s in scheduler_output.decode_slots
                if s in self.runner.slots}
        if any(self._marked.get(request_id) == "poisoned" for request_id in ids):
            raise RuntimeError("simulated failure on a poisoned request")
        output = self.runner.execute(scheduler_output, between_layers)
        for request_id in output.next_token_ids:
            if self._marked.get(request_id) == "garbling":
                output.next_token_ids[request_id] = self.GARBAGE_TOKEN
        return output

    def __getattr__(self, name):
        return getattr(self.runner, name)


class MixRecorder(SlowRunner):
    """The slow runner, counting the steps that decoded a beam search's beams beside single
    sequences (one running batch holding both)."""

    def __init__(self, runner, delay_s: float = STEP_DELAY_S):
        super().__init__(runner, delay_s)
        self.num_mixed_steps = 0

    def execute(self, scheduler_output, between_layers=None):
        num_beam_rows = sum(len(step.parents) for step in scheduler_output.beam_steps)
        if 0 < num_beam_rows < len(scheduler_output.decode_slots):
            self.num_mixed_steps += 1
        return super().execute(scheduler_output, between_layers)


def mix_recorder(config, reader):
    from takeoff.app import build_runner

    return MixRecorder(build_runner(config, reader))


def slow_runner(config, reader):
    from takeoff.app import build_runner

    return SlowRunner(build_runner(config, reader))


def failing_runner(config, reader):
    from takeoff.app import build_runner

    return FailingRunner(build_runner(config, reader))


def generator_runner(engine):
    """The runner of the engine's (first) generator reader."""
    return next(lane.runner for lane in engine.core.lanes.values() if lane.holds_slots)
