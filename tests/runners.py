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
    and any step that holds a poisoned request raises (a request that breaks the model)."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.broken = threading.Event()
        self.poisoned_prompts: set[tuple[int, ...]] = set()  # prompt ids whose requests break
        self._poisoned_slots: set[int] = set()

    def execute(self, scheduler_output, between_layers=None):
        if self.broken.is_set():
            raise RuntimeError("simulated device failure")
        self._poisoned_slots -= set(scheduler_output.freed_slots)
        for item in scheduler_output.prefill:
            if tuple(item.prompt_ids) in self.poisoned_prompts:
                self._poisoned_slots.add(item.slot)
        slots = {p.slot for p in scheduler_output.prefill} | set(scheduler_output.decode_slots)
        if slots & self._poisoned_slots:
            raise RuntimeError("simulated failure on a poisoned request")
        return self.runner.execute(scheduler_output, between_layers)

    def __getattr__(self, name):
        return getattr(self.runner, name)


def slow_runner(config, reader):
    from takeoff.app import build_runner

    return SlowRunner(build_runner(config, reader))


def failing_runner(config, reader):
    from takeoff.app import build_runner

    return FailingRunner(build_runner(config, reader))


def generator_runner(engine):
    """The runner of the engine's (first) generator reader."""
    return next(lane.runner for lane in engine.core.lanes.values() if lane.holds_slots)
