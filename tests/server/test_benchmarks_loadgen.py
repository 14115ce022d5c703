"""The load benchmark against a real (tiny) takeoff server: what it counts and what it saves."""
from __future__ import annotations

import asyncio
import json

import aiohttp

from benchmarks import workloads
from benchmarks.load_stats import summarize
from benchmarks.loadgen import CUT_OFF, closed_loop, open_loop, send
from takeoff import cli
from tests.server.helpers import wait_for_metric

TINY_VOCAB = 300  # prompts of words t3..t299: any tokenizer reads them


def generation(num_calls: int, output_lens=(4, 8)) -> list[workloads.Call]:
    return workloads.generation_calls(num_calls, seed=1, input_lens=(3, 6),
                                      output_lens=output_lens, vocab_size=TINY_VOCAB)


async def run_open(url: str, calls, stream: bool, rate: float = 50.0, seconds: float = 60.0):
    async with aiohttp.ClientSession() as http:
        deadline = asyncio.get_running_loop().time() + seconds
        return await open_loop(lambda i: send(http, url, calls[i], stream), len(calls), rate,
                               seed=0, deadline=deadline, on_done=lambda: None)


async def test_streamed_calls_are_timed_piece_by_piece(server_url):
    calls = generation(6)
    outcomes = await run_open(server_url, calls, stream=True)
    assert [o.status for o in outcomes] == [200] * 6
    assert [o.num_tokens for o in outcomes] == [c.body["max_new_tokens"] for c in calls]
    for outcome in outcomes:
        assert 0 < outcome.ttft_s <= outcome.e2e_s
        assert len(outcome.itl_s) >= 1 and sum(outcome.itl_s) <= outcome.e2e_s


async def test_whole_answers_count_their_tokens_and_ttft_is_their_latency(server_url):
    calls = generation(4) + workloads.classification_calls(4)
    async with aiohttp.ClientSession() as http:
        deadline = asyncio.get_running_loop().time() + 60
        outcomes = await closed_loop(lambda i: send(http, server_url, calls[i], False),
                                     len(calls), 3, deadline, on_done=lambda: None)
    assert sorted(o.num_tokens for o in outcomes) == sorted(
        [0] * 4 + [c.body["max_new_tokens"] for c in calls[:4]])
    assert all(o.ok and o.ttft_s == o.e2e_s and not o.itl_s for o in outcomes)


async def test_the_feedback_flow_analyzes_then_streams_the_rewrite(server_url):
    outcomes = await run_open(server_url, workloads.feedback_calls(3), stream=True)
    assert [o.status for o in outcomes] == [200] * 3
    assert all(o.ttft_s <= o.e2e_s for o in outcomes)


async def test_429s_are_counted_apart_from_errors(server_factory):
    url = server_factory(max_num_seqs=1, max_queue=1)
    calls = generation(8, output_lens=(60, 60))
    async with aiohttp.ClientSession() as http:
        outcomes = await asyncio.gather(*(send(http, url, c, True) for c in calls))
    point = summarize("takeoff", None, 8, outcomes, 1.0, True, None)
    assert point["rejected_429"] >= 1
    assert point["errors"] == 0
    assert point["succeeded"] + point["rejected_429"] == 8


async def test_a_point_stops_at_its_time_limit_and_the_server_frees_the_slots(server_factory):
    url = server_factory(max_num_seqs=4, max_new_tokens=4096)
    calls = generation(3, output_lens=(4000, 4000))
    outcomes = await run_open(url, calls, stream=True, rate=100.0, seconds=0.5)
    assert [o.error for o in outcomes] == [CUT_OFF] * 3
    async with aiohttp.ClientSession() as http:
        assert await wait_for_metric(http, url, "takeoff_kv_slots_in_use", 0) == 0


def test_takeoff_bench_against_a_url_saves_json_markdown_and_a_plot(server_url, tmp_path):
    path = tmp_path / "load.json"
    cli.main(["bench", "--url", server_url, "--rates", "20,40", "--num-requests", "4", "--warmup", "1",
               "--input-lens", "3,5", "--output-lens", "2,4", "--json", str(path)])
    report = json.loads(path.read_text())
    assert [(p["system"], p["rate"], p["requests"], p["errors"]) for p in report["systems"]] == [
        ("takeoff", 20.0, 4, 0), ("takeoff", 40.0, 4, 0)]
    assert set(report["goodput_rps"]) == {"takeoff"}
    assert path.with_suffix(".png").stat().st_size > 0
    assert "| takeoff | 40 req/s | 4 | 0 | 0 |" in path.with_suffix(".md").read_text()
