"""Beam search over the Takeoff API: beams and greedy requests in one running batch, each equal
to Hugging Face; the answer shapes for n > 1; the stream's one event; every row freed when the
client leaves; admission by rows; and each bad beam field a 400 naming it."""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
import torch
from transformers import AutoTokenizer, T5ForConditionalGeneration

from scheduler.sampling_params import SamplingParams
from tests.model.beam_reference import hf_beams
from tests.runners import generator_runner, mix_recorder, slow_runner
from tests.server.helpers import assert_api_error, read_events, wait_for_metric

PROMPTS = ["Your report was late again.", "Thanks for the demo", "Why is this still broken?"]
LONG = {"max_new_tokens": 250, "min_new_tokens": 250}  # EOS suppressed: exactly 250 steps
BEAM_FIELDS = ("num_beams", "length_penalty", "early_stopping", "num_return_sequences",
               "max_new_tokens", "min_new_tokens")


@pytest.fixture(scope="module")
def reference(tiny_t5_dir):
    """HF generate on the server's model: (text, score) of each returned sequence, best first
    (greedy: one, with no score)."""
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_t5_dir)

    def generate(text: str, **fields) -> list[tuple[str, float | None]]:
        params = SamplingParams(**{k: v for k, v in fields.items() if k in BEAM_FIELDS})
        ids = tokenizer(text)["input_ids"]
        with torch.inference_mode():
            if params.num_beams > 1:
                return [(tokenizer.decode(seq, skip_special_tokens=True), score)
                        for seq, score in hf_beams(model, ids, params)]
            out = model.generate(torch.tensor([ids]), do_sample=False, num_beams=1,
                                 max_new_tokens=params.max_new_tokens,
                                 min_new_tokens=params.min_new_tokens)
        return [(tokenizer.decode(out[0], skip_special_tokens=True), None)]

    return generate


async def post(http, url, body):
    async with http.post(url + "/generate", json=body) as response:
        return response.status, await response.json()


def assert_scores(metadata: list[dict], expected: list[tuple[str, float | None]]) -> None:
    assert len(metadata) == len(expected)
    for meta, (_, score) in zip(metadata, expected):
        assert abs(meta["score"] - score) <= 1e-4 * max(1.0, abs(score)), (meta, score)


async def test_beams_and_greedy_share_a_running_batch_and_each_equals_hugging_face(
        server_factory, http, reference):
    server = server_factory.server(runner_factory=mix_recorder)
    bodies = [
        {"text": PROMPTS[0], "max_new_tokens": 24, "min_new_tokens": 20},
        {"text": PROMPTS[1], "num_beams": 4, "max_new_tokens": 20, "return_metadata": True},
        {"text": PROMPTS[2], "num_beams": 3, "num_return_sequences": 2, "length_penalty": 0.5,
         "max_new_tokens": 18, "return_metadata": True},
        {"text": PROMPTS[1], "max_new_tokens": 30, "min_new_tokens": 26},
        {"text": PROMPTS[0], "num_beams": 2, "early_stopping": True, "max_new_tokens": 16,
         "return_metadata": True},
    ]
    answers = await asyncio.gather(*(post(http, server.url, body) for body in bodies))
    assert generator_runner(server.engine).num_mixed_steps > 0
    for body, (status, answer) in zip(bodies, answers):
        assert status == 200, answer
        expected = reference(**body)
        if body.get("num_return_sequences", 1) > 1:
            assert answer["text"] == [text for text, _ in expected]
            assert_scores(answer["metadata"], expected)
        else:
            assert answer["text"] == expected[0][0]
            if "num_beams" in body:
                assert_scores([answer["metadata"]], expected[:1])


async def test_n_sequences_answer_as_lists_best_first(server_url, http, reference):
    beams = {"num_beams": 3, "num_return_sequences": 3, "max_new_tokens": 12,
             "return_metadata": True}
    status, one = await post(http, server_url, {"text": PROMPTS[0], **beams})
    assert status == 200
    assert one["text"] == [text for text, _ in reference(PROMPTS[0], **beams)]
    assert [set(m) for m in one["metadata"]] == [
        {"input_tokens", "generated_tokens", "finish_reason", "score"}] * 3
    assert [m["score"] for m in one["metadata"]] == sorted(
        (m["score"] for m in one["metadata"]), reverse=True)
    status, many = await post(http, server_url, {"text": PROMPTS[:2], **beams})
    assert status == 200
    assert many["text"] == [[t for t, _ in reference(p, **beams)] for p in PROMPTS[:2]]
    assert many["text"][0] == one["text"] and len(many["metadata"]) == 2
    assert all(len(row) == 3 for row in many["metadata"])


async def test_a_beam_stream_is_one_text_event_then_the_metadata(server_url, http, reference):
    body = {"text": PROMPTS[2], "num_beams": 4, "max_new_tokens": 14}
    async with http.post(server_url + "/generate_stream", json=body) as response:
        assert response.status == 200
        events = await read_events(response)
    assert [e.event for e in events] == ["message", "metadata"]
    (text, score), *_ = reference(**body)
    assert events[0].data == text
    metadata = json.loads(events[1].data)
    assert abs(metadata["score"] - score) <= 1e-4 * max(1.0, abs(score))
    status, whole = await post(http, server_url, {**body, "return_metadata": True})
    assert whole["text"] == text and whole["metadata"] == metadata


@pytest.mark.parametrize("path", ["/generate_stream", "/generate"])
async def test_a_client_that_leaves_frees_every_beam_row(server_factory, http, path):
    url = server_factory(runner_factory=slow_runner)
    request = asyncio.create_task(http.post(url + path, json={"text": "beams", "num_beams": 4,
                                                              **LONG}))
    assert await wait_for_metric(http, url, "takeoff_kv_slots_in_use", 4) == 4
    request.cancel()  # the client closes its connection: mid-request, or mid-stream below
    (response,) = await asyncio.gather(request, return_exceptions=True)
    if isinstance(response, aiohttp.ClientResponse):
        response.close()
    started = time.monotonic()
    assert await wait_for_metric(http, url, "takeoff_kv_slots_in_use", 0, timeout_s=2) == 0
    assert time.monotonic() - started < 1.0  # a step takes 20 ms here; the answer was 5 s away


async def test_a_burst_of_beam_requests_is_admitted_by_rows(server_factory, http):
    url = server_factory(max_num_seqs=4, max_queue=4, runner_factory=slow_runner)
    body = {"text": "burst", "num_beams": 2, "max_new_tokens": 30, "min_new_tokens": 30}
    statuses = await asyncio.gather(*(post(http, url, body) for _ in range(10)))
    # 4 slots + 4 queued = 8 rows: four searches of two beams each.
    assert sorted(status for status, _ in statuses) == [200] * 4 + [429] * 6
    status, answer = await post(http, url, {**body, "text": ["a", "b", "c"], "num_beams": 3})
    assert_api_error(status, answer, 400, "num_beams")  # 9 rows can never be admitted
    assert "admits at most 8" in answer["error"]["message"]


async def test_a_beam_search_larger_than_the_slot_cache_is_a_400(server_factory, http):
    url = server_factory(max_num_seqs=4, max_queue=4, runner_factory=slow_runner)
    status, answer = await post(http, url, {"text": "wide", "num_beams": 5})
    assert_api_error(status, answer, 400, "num_beams")
    assert "KV slot" in answer["error"]["message"] and "4" in answer["error"]["message"]
    async with http.get(url + "/reader_groups") as reply:
        assert (await reply.json())["primary"][0]["max_num_beams"] == 4


@pytest.mark.parametrize("fields, param, words", [
    ({"num_beams": 0}, "num_beams", "greater than or equal to 1"),
    ({"num_beams": 9}, "num_beams", "--max-num-beams"),
    ({"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences", "1..'num_beams' (2)"),
    ({"num_return_sequences": 2}, "num_return_sequences", "1..'num_beams' (1)"),
    ({"num_beams": 2, "early_stopping": "soon"}, "early_stopping", "\"never\""),
    ({"num_beams": 2, "early_stopping": 1}, "early_stopping", "\"never\""),
    ({"num_beams": 2, "length_penalty": "long"}, "length_penalty", ""),
    ({"num_beams": 2, "sampling_topk": 50, "sampling_temperature": 0.7}, "num_beams",
     "'sampling_temperature' above 0 with 'sampling_topk'"),
])
async def test_a_bad_beam_field_is_a_400_naming_it(server_url, http, fields, param, words):
    status, answer = await post(http, server_url, {"text": "bad", **fields})
    assert_api_error(status, answer, 400, param)
    assert words in answer["error"]["message"]


async def test_a_stream_asking_for_several_sequences_is_a_400(server_url, http):
    body = {"text": "one answer", "num_beams": 3, "num_return_sequences": 2}
    async with http.post(server_url + "/generate_stream", json=body) as response:
        assert_api_error(response.status, await response.json(), 400, "num_return_sequences")


async def test_a_temperature_without_top_k_leaves_a_beam_search_greedy(server_url, http,
                                                                      reference):
    """sampling_temperature alone does not sample (sampling_topk is 1): the beams decode as HF's
    do_sample=False, as without it."""
    body = {"text": PROMPTS[1], "num_beams": 3, "max_new_tokens": 10}
    status, answer = await post(http, server_url, {**body, "sampling_temperature": 0.7})
    assert status == 200 and answer["text"] == reference(**body)[0][0]
