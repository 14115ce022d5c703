"""`lora_id` on /generate and /generate_stream: requests of different adapters and of the base
share the server's steps over real HTTP, and each gets the text of PEFT's model for its own
adapter (beam searches too); an adapter the group does not have is a 404 naming it."""
from __future__ import annotations

import asyncio

import pytest

from tests.runners import generator_runner
from tests.server.helpers import assert_api_error, joined_text, read_events

PROMPTS = ["Your report was late again.", "Thanks for the demo",
           "Café 🙂 line one\nline two", "Why is this still broken?"]
CYCLE = [None, "qv", "all-rslora"]  # each request's adapter in turn; None: the base
MAX_NEW = 24


def generate_body(text: str, lora: str | None, **fields) -> dict:
    body = {"text": text, "max_new_tokens": MAX_NEW, **fields}
    return body if lora is None else {**body, "lora_id": lora}


async def generate(http, url: str, body: dict) -> tuple[int, dict]:
    async with http.post(url + "/generate", json=body) as response:
        return response.status, await response.json()


async def generate_stream(http, url: str, body: dict) -> str:
    async with http.post(url + "/generate_stream", json=body) as response:
        assert response.status == 200
        return joined_text(await read_events(response))


async def test_a_mixed_batch_gives_each_request_the_text_of_its_own_peft_model(
        lora_server, http, peft_greedy):
    jobs = [(text, CYCLE[i % len(CYCLE)]) for i, text in enumerate(PROMPTS * 3)]
    runner = generator_runner(lora_server.engine)
    runner.step_adapters.clear()
    answers = await asyncio.gather(
        *[generate(http, lora_server.url, generate_body(t, lora)) for t, lora in jobs],
        generate_stream(http, lora_server.url, generate_body(PROMPTS[0], "all-rslora")))
    *plain, streamed = answers
    assert [status for status, _ in plain] == [200] * len(jobs)
    texts = [body["text"] for _, body in plain]
    assert texts == [peft_greedy(t, MAX_NEW, lora) for t, lora in jobs]
    assert streamed == peft_greedy(PROMPTS[0], MAX_NEW, "all-rslora")
    base = {t: text for (t, lora), text in zip(jobs, texts) if lora is None}
    for name in CYCLE[1:]:  # each adapter changed some text: its update was applied
        assert any(text != base[t] for (t, lora), text in zip(jobs, texts) if lora == name)
    assert max(len(step) for step in runner.step_adapters) == len(CYCLE)  # all three in a step


async def test_a_list_of_texts_runs_with_the_one_adapter_it_names(lora_server, http, peft_greedy):
    status, body = await generate(http, lora_server.url,
                                  generate_body(PROMPTS[:2], "qv", return_metadata=True))
    assert status == 200
    assert body["text"] == [peft_greedy(t, MAX_NEW, "qv") for t in PROMPTS[:2]]


async def test_a_beam_search_runs_with_its_adapter_beside_greedy_requests(lora_server, http, peft_greedy):
    """Every beam of a search (beams fork as they go) keeps the request's adapter."""
    jobs = [(PROMPTS[1], "all-rslora", 3), (PROMPTS[3], "qv", 1), (PROMPTS[1], None, 3), (PROMPTS[0], "qv", 2)]
    answers = await asyncio.gather(*[generate(http, lora_server.url, generate_body(t, lora, num_beams=k))
                                     for t, lora, k in jobs])
    assert [status for status, _ in answers] == [200] * len(jobs)
    texts = [body["text"] for _, body in answers]
    assert texts == [peft_greedy(t, MAX_NEW, lora, num_beams=k) for t, lora, k in jobs]
    assert texts[0] != texts[2]  # the same prompt and search, with and without the adapter


@pytest.mark.parametrize("path", ["/generate", "/generate_stream"])
async def test_an_adapter_the_group_does_not_have_is_a_404_naming_it(lora_server, http, path):
    async with http.post(lora_server.url + path,
                         json=generate_body(PROMPTS[0], "support-tone")) as response:
        body = await response.json()
    assert_api_error(response.status, body, 404, "lora_id")
    assert "'support-tone'" in body["error"]["message"]
    assert "'qv', 'all-rslora'" in body["error"]["message"] or \
        "'all-rslora', 'qv'" in body["error"]["message"]


async def test_an_adapter_on_a_group_that_is_not_a_generator_is_a_400(lora_server, http):
    async with http.post(lora_server.url + "/generate", json=generate_body(
            PROMPTS[0], "qv", consumer_group="classifier")) as response:
        assert response.status == 400


async def test_reader_groups_list_each_readers_adapters(lora_server, lora_dirs, http):
    async with http.get(lora_server.url + "/reader_groups") as response:
        groups = await response.json()
    generator, = groups["primary"]
    assert [(a["lora_id"], a["path"], a["r"]) for a in generator["loras"]] == [
        ("qv", lora_dirs["qv"], 4), ("all-rslora", lora_dirs["all-rslora"], 8)]
    assert generator["loras"][1]["target_modules"] == ["k", "o", "q", "v", "wi_0", "wi_1", "wo"]
    assert generator["max_loras"] == 8
    assert "loras" not in groups["classifier"][0]
