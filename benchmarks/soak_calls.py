"""The soak's calls: the mixed load, clients that leave early, the bursts, and what each minute saw."""
from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable

import aiohttp

from benchmarks import workloads
from benchmarks.load_stats import percentiles_ms
from benchmarks.loadgen import Outcome, post_timed, send
from clients.sse import SSEDecoder

# share of the mixed calls of each kind
MIX = {"stream": 0.35, "generate": 0.25, "feedback": 0.2, "completion": 0.2}
BURST_TOKENS = 32
BURST_OFFSET_S = 5  # each minute's burst arrives this far into the minute


@dataclass
class MinuteLog:
    """The calls that started in one minute, and the server as that minute ended."""
    number: int  # 1-based
    statuses: Counter = field(default_factory=Counter)  # answered or failed calls by HTTP status
    abandoned: int = 0  # calls whose client left before the answer ended
    latencies_s: list[float] = field(default_factory=list)  # completed calls, end to end
    errors: Counter = field(default_factory=Counter)  # the failed calls' messages, cut short
    rss_mb: float | None = None
    slots_in_use: float | None = None

    def record(self, outcome: Outcome | None) -> None:
        """outcome None: the client left on purpose."""
        if outcome is None:
            self.abandoned += 1
            return
        self.statuses[str(outcome.status)] += 1
        if outcome.ok:
            self.latencies_s.append(outcome.e2e_s)
        elif outcome.status != 429:
            self.errors[(outcome.error or "")[:120]] += 1

    def summary(self) -> dict:
        return {"minute": self.number, "answered": self.statuses["200"],
                "abandoned": self.abandoned, "statuses": dict(self.statuses),
                "p99_ms": percentiles_ms(self.latencies_s)["p99"],
                "rss_mb": None if self.rss_mb is None else round(self.rss_mb, 1),
                "slots_in_use": self.slots_in_use,
                "errors": [f"{count} x {message}" for message, count in self.errors.most_common(3)]}


class Runner:
    """Launches calls as tasks, logs each in the minute it started, and waits for the last."""

    def __init__(self, http: aiohttp.ClientSession, url: str, log: list[MinuteLog],
                 rng: random.Random, disconnect_share: float) -> None:
        self.http, self.url, self.log, self.rng = http, url, log, rng
        self.disconnect_share = disconnect_share
        self.start = time.monotonic()
        self.tasks: set[asyncio.Task] = set()
        self.paragraphs = workloads.feedback_calls(200, seed=rng.randrange(1 << 30))
        self.sentences = workloads.classification_calls(200, seed=rng.randrange(1 << 30))

    def launch(self, call: Awaitable[Outcome | None]) -> None:
        minute = self.log[min(int((time.monotonic() - self.start) // 60), len(self.log) - 1)]
        task = asyncio.create_task(self._logged(minute, call))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _logged(self, minute: MinuteLog, call: Awaitable[Outcome | None]) -> None:
        try:
            outcome = await call
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            outcome = Outcome(0, error=f"{type(exc).__name__}: {exc}")
        minute.record(outcome)

    async def arrivals(self, end: float, rate: float, make_call) -> None:
        while True:
            await asyncio.sleep(self.rng.expovariate(rate))
            if time.monotonic() >= end:
                return
            self.launch(make_call())

    async def bursts(self, end: float, size: int) -> None:
        for minute in self.log:
            at = self.start + (minute.number - 1) * 60 + BURST_OFFSET_S
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            if time.monotonic() >= end:
                return
            for _ in range(size):
                self.launch(send(self.http, self.url, self._generation(BURST_TOKENS), False))

    async def drain(self, timeout_s: float) -> bool:
        """Waits for the calls still running; True when all ended in time (the rest are
        cancelled, i.e. their clients leave)."""
        if not self.tasks:
            return True
        _, running = await asyncio.wait(set(self.tasks), timeout=timeout_s)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        return not running

    def classify_call(self) -> Awaitable[Outcome]:
        return send(self.http, self.url, self.rng.choice(self.sentences), False)

    def mixed_call(self) -> Awaitable[Outcome | None]:
        kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        leaves = self.rng.random() < self.disconnect_share
        if kind == "feedback":
            return send(self.http, self.url, self.rng.choice(self.paragraphs), True)
        if kind == "stream":
            call = self._generation(self.rng.randint(16, 64))
            if leaves:
                return leave_stream(self.http, self.url, call.body, self.rng.randint(1, 8))
            return send(self.http, self.url, call, True)
        if kind == "generate":
            work = send(self.http, self.url, self._generation(self.rng.randint(16, 64)), False)
        else:
            body = {"model": "primary", "prompt": self.rng.choice(self.paragraphs).body["text"],
                    "max_tokens": self.rng.randint(16, 64)}
            work = post_timed(self.http, self.url + "/v1/completions", body)
        return leave_after(work, self.rng.uniform(0.1, 1.0)) if leaves else work

    def _generation(self, num_tokens: int) -> workloads.Call:
        text = self.rng.choice(self.paragraphs).body["text"]
        return workloads.Call("generation", {"text": text, "max_new_tokens": num_tokens})


async def leave_stream(http, url: str, body: dict, after_pieces: int) -> Outcome | None:
    """A /generate_stream client that closes the connection after a few pieces (None); an
    Outcome when the server refused it or the stream ended first."""
    start = time.perf_counter()
    async with http.post(url + "/generate_stream", json=body) as response:
        if response.status != 200:
            await response.read()
            return Outcome(response.status, time.perf_counter() - start)
        decoder, num_pieces = SSEDecoder(), 0
        async for chunk in response.content.iter_any():
            num_pieces += sum(e.event == "message" for e in decoder.feed(chunk))
            if num_pieces >= after_pieces:
                response.close()
                return None
    return Outcome(200, time.perf_counter() - start)


async def leave_after(work: Awaitable[Outcome], seconds: float) -> Outcome | None:
    """A client that gives up on a whole answer after `seconds`, closing its connection."""
    try:
        return await asyncio.wait_for(work, seconds)
    except asyncio.TimeoutError:
        return None


async def metric(http, url: str, name: str) -> float | None:
    """One unlabelled sample of /metrics, e.g. takeoff_kv_slots_in_use."""
    async with http.get(url + "/metrics") as response:
        text = await response.text()
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def slots_at_end(http, url: str, wait_s: float = 10.0) -> tuple[float | None, float | None]:
    """KV slots in use once the last answer is in, and how many seconds until none were (None
    if still some after wait_s)."""
    start = time.monotonic()
    first = value = await metric(http, url, "takeoff_kv_slots_in_use")
    while value and time.monotonic() - start < wait_s:
        await asyncio.sleep(0.1)
        value = await metric(http, url, "takeoff_kv_slots_in_use")
    return first, (round(time.monotonic() - start, 2) if value == 0 else None)
