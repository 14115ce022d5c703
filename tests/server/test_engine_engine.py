"""The server under faults, from outside: one broken request fails alone, a client that leaves
frees what it held on every endpoint, a burst gets a fixed share, a hung step shows on /ready."""
from __future__ import annotations

import asyncio
import json
import threading
import time

import aiohttp
import pytest

from scheduler.request import Task
from takeoff.errors import ApiError
from takeoff.feedback.coach import REWRITE_SAMPLING
from takeoff.feedback.task import kind_of
from tests.feedback_models import LEARNED
from tests.runners import failing_runner, generator_runner, slow_runner
from tests.server.helpers import assert_api_error, metric, read_events, wait_for_metric

LONG = {"max_new_tokens": 200, "min_new_tokens": 200}


def prompt_ids(server, text: str) -> tuple[int, ...]:
    reader = server.engine.reader_set.pick(None, Task.GENERATE)
    return tuple(reader.encode(text))


async def post(http, url: str, path: str, body: dict) -> tuple[int, dict]:
    async with http.post(url + path, json=body) as response:
        return response.status, await response.json()


async def test_a_request_that_breaks_the_model_fails_alone(server_factory, http):
    server = server_factory.server(runner_factory=failing_runner)
    generator_runner(server.engine).poisoned_prompts.add(prompt_ids(server, "poison pill"))
    body = {"max_new_tokens": 12, "min_new_tokens": 12}
    alone = await post(http, server.url, "/generate", {"text": "a fine request", **body})
    results = await asyncio.gather(*(
        post(http, server.url, "/generate", {"text": text, **body})
        for text in ("a fine request", "poison pill", "a fine request")))
    assert [status for status, _ in results] == [200, 500, 200]
    assert_api_error(*results[1], 500)
    assert "poisoned request" in results[1][1]["error"]["message"]
    assert results[0][1] == results[2][1] == alone[1]  # the same text as when it ran alone
    assert await wait_for_metric(http, server.url, "takeoff_kv_slots_in_use", 0) == 0


async def test_an_output_the_tokenizer_cannot_decode_fails_alone(server_factory, http):
    server = server_factory.server(runner_factory=failing_runner)
    generator_runner(server.engine).garbling_prompts.add(prompt_ids(server, "garbled answer"))
    body = {"max_new_tokens": 8, "min_new_tokens": 8}
    streamed = asyncio.create_task(http.post(server.url + "/generate_stream",
                                             json={"text": "a stream", **body}))
    garbled = await post(http, server.url, "/generate", {"text": "garbled answer", **body})
    fine = await post(http, server.url, "/generate", {"text": "fine", **body})
    events = await read_events(await streamed)
    assert_api_error(*garbled, 500)
    assert fine[0] == 200 and events[-1].event == "metadata"
    assert json.loads(events[-1].data)["generated_tokens"] == 8


async def test_an_idle_server_admits_exactly_slots_plus_queue_of_a_burst(server_factory, http):
    url = server_factory(max_num_seqs=4, max_queue=4, runner_factory=slow_runner)
    body = {"text": "burst", "max_new_tokens": 40, "min_new_tokens": 40}
    statuses = await asyncio.gather(*(post(http, url, "/generate", body) for _ in range(30)))
    codes = sorted(status for status, _ in statuses)
    assert codes == [200] * 8 + [429] * 22


@pytest.mark.parametrize("path, body", [
    ("/generate", {"text": "leave", **LONG}),
    ("/v1/completions", {"model": "primary", "prompt": "leave", "max_tokens": 200,
                         "min_tokens": 200}),
    ("/v1/chat/completions", {"model": "primary", "max_tokens": 200, "min_tokens": 200,
                              "messages": [{"role": "user", "content": "leave"}]}),
])
async def test_a_non_streaming_client_that_leaves_frees_its_slot(server_factory, http, path, body):
    url = server_factory(runner_factory=slow_runner)
    request = asyncio.create_task(http.post(url + path, json=body))
    assert await wait_for_metric(http, url, "takeoff_kv_slots_in_use", 1) == 1
    request.cancel()  # the client closes its connection after a moment
    await asyncio.gather(request, return_exceptions=True)
    started = time.monotonic()
    assert await wait_for_metric(http, url, "takeoff_kv_slots_in_use", 0, timeout_s=2) == 0
    assert time.monotonic() - started < 1.0  # a step takes 20 ms here; the answer was 4 s away
    assert await metric(http, url, "takeoff_requests_total", f'endpoint="{path}",status="499"') >= 1


async def test_leaving_the_feedback_coach_frees_its_rewrites(server_factory, http,
                                                             learned_classifier):
    critical = [s for s, label in LEARNED.items() if kind_of(label) == "critical"]
    url = server_factory(classifier=learned_classifier, runner_factory=slow_runner, max_num_seqs=8)
    request = asyncio.create_task(http.post(url + "/v1/feedback/improve",
                                            json={"text": " ".join(critical)}))
    # Each rewrite is a beam search holding a slot per beam: two of them fill the 8 slots.
    assert await wait_for_metric(http, url, "takeoff_kv_slots_in_use", 2 * REWRITE_SAMPLING.num_beams) == 8
    request.cancel()
    await asyncio.gather(request, return_exceptions=True)
    assert await wait_for_metric(http, url, "takeoff_kv_slots_in_use", 0, timeout_s=2) == 0


async def test_leaving_a_classification_aborts_it(server_factory, http):
    url = server_factory(max_classify_batch=1, runner_factory=slow_runner)
    texts = [f"sentence number {i}" for i in range(40)]  # one per 20 ms step: 0.8 s of work
    request = asyncio.create_task(http.post(url + "/classify", json={"text": texts}))
    await asyncio.sleep(0.2)
    request.cancel()
    await asyncio.gather(request, return_exceptions=True)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        aborted = await metric(http, url, "takeoff_finished_requests_total", 'reason="aborted"')
        if aborted >= 20:
            break
        await asyncio.sleep(0.02)
    assert aborted >= 20  # most were still waiting when the client left
    classified = await metric(http, url, "takeoff_finished_requests_total",
                              'reason="classified"')
    assert classified + aborted == 40


async def test_a_chat_message_without_content_is_a_400_naming_it(server_url, http):
    status, body = await post(http, server_url, "/v1/chat/completions",
                              {"model": "primary", "messages": [{"role": "user"}]})
    assert_api_error(status, body, 400, "messages")
    assert "messages[0].content" in body["error"]["message"]


async def test_a_hung_step_turns_ready_to_503_until_it_ends(server_factory, http):
    class Hanging:
        def __init__(self, runner):
            self.runner, self.hang_s = runner, 0.0

        def execute(self, scheduler_output, between_layers=None):
            time.sleep(self.hang_s)
            return self.runner.execute(scheduler_output, between_layers)

    def hanging_runner(config, reader):
        from takeoff.app import build_runner
        return Hanging(build_runner(config, reader))

    server = server_factory.server(watchdog_timeout=0.2, runner_factory=hanging_runner)
    generator_runner(server.engine).hang_s = 1.0
    request = asyncio.create_task(post(http, server.url, "/generate",
                                       {"text": "slow", "max_new_tokens": 1}))
    await asyncio.sleep(0.5)
    async with http.get(server.url + "/ready") as ready:
        assert ready.status == 503
        assert "watchdog" in (await ready.json())["error"]["message"]
    generator_runner(server.engine).hang_s = 0.0
    assert (await request)[0] == 200
    async with http.get(server.url + "/ready") as ready:
        assert ready.status == 200


async def test_stopping_never_blocks_the_event_loop_even_with_a_hung_step(tiny_t5_dir):
    from scheduler.sampling_params import SamplingRequest
    from takeoff.app import build_runner
    from takeoff.config import ServerConfig
    from takeoff.engine.engine import Engine
    from takeoff.engine.readers import load_readers

    class Hung:
        def __init__(self, runner):
            self.runner = runner

        def execute(self, scheduler_output, between_layers=None):
            time.sleep(3.0)
            return self.runner.execute(scheduler_output, between_layers)

    config = ServerConfig(model=str(tiny_t5_dir), max_num_seqs=2, drain_timeout=1.0)
    readers = load_readers(config)
    engine = Engine(config, readers, {r.reader_id: Hung(build_runner(config, r)) for r in readers})
    engine.start()
    work = await engine.submit(Task.GENERATE, ["stuck"], sampling=SamplingRequest({"max_new_tokens": 1}))
    await asyncio.sleep(0.2)  # the step has started and hangs
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    await engine.stop()
    waited = time.monotonic() - started
    ticker.cancel()
    assert 0.9 < waited < 2.5  # gave the step drain_timeout, then stopped waiting
    assert ticks >= 40  # the event loop kept running all along
    with pytest.raises(ApiError) as caught:
        await work.results()
    assert caught.value.status == 503


async def test_a_grammar_compiles_off_the_event_loop(server_url, monkeypatch):
    """While a request's regex compiles, the server answers others: compiling never blocks the
    event loop."""
    from kernels.constrained import GrammarCompiler

    pattern, started, release = "(yes|no) [a-z]+", threading.Event(), threading.Event()
    compile_now = GrammarCompiler.compile

    def held_compile(self, regex=None, json_schema=None):
        if regex == pattern and not release.is_set():
            started.set()
            release.wait(30)
        return compile_now(self, regex, json_schema)

    monkeypatch.setattr(GrammarCompiler, "compile", held_compile)
    body = {"text": "Answer me", "regex_string": pattern, "max_new_tokens": 8}
    async with aiohttp.ClientSession() as http:
        generation = asyncio.ensure_future(http.post(server_url + "/generate", json=body))
        assert await asyncio.to_thread(started.wait, 30)
        try:
            async with http.get(server_url + "/health",
                                timeout=aiohttp.ClientTimeout(total=10)) as health:
                assert health.status == 200
        finally:
            release.set()
        async with await generation as answer:
            assert answer.status == 200
            assert (await answer.json())["text"] != ""
