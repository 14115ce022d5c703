"""A real model runner that takes its time, so a test can act while a generation is running."""
from __future__ import annotations

import time

STEP_DELAY_S = 0.02  # 200 tokens take about 4 s: long enough to disconnect mid-answer


class SlowRunner:
    def __init__(self, runner, delay_s: float = STEP_DELAY_S):
        self.runner = runner
        self.delay_s = delay_s

    def execute(self, scheduler_output):
        time.sleep(self.delay_s)
        return self.runner.execute(scheduler_output)

    def __getattr__(self, name):
        return getattr(self.runner, name)


def slow_runner(config, readers):
    """A `runner_factory` for `server_factory`: the real runner, slowed down."""
    from takeoff.app import build_runner

    return SlowRunner(build_runner(config, readers))


async def metric(session, server_url: str, name: str, labels: str = "") -> float:
    """The value of one sample in the server's /metrics (0 when it has not been recorded yet)."""
    async with session.get(server_url + "/metrics") as response:
        text = await response.text()
    prefix = name + (f"{{{labels}}}" if labels else "")
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[-1])
    return 0.0
