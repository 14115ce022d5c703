"""/generate and /generate_stream against Hugging Face, and against each other, over real HTTP."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer, T5ForConditionalGeneration

from tests.server.helpers import assert_api_error, joined_text, read_events

PROMPTS = ["Your report was late again.", "Thanks for the demo",
           "Café 🙂 line one\nline two", "Why is this still broken?"]


@pytest.fixture(scope="module")
def hf_greedy(tiny_t5_dir):
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_t5_dir)

    def generate(text: str, max_new_tokens: int) -> str:
        ids = tokenizer(text, return_tensors="pt").input_ids
        with torch.inference_mode():
            out = model.generate(ids, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens)
        return tokenizer.decode(out[0], skip_special_tokens=True)

    return generate


async def post(http, url, body):
    async with http.post(url, json=body) as response:
        return response.status, await response.json()


async def stream(http, url, body):
    async with http.post(url + "/generate_stream", json=body) as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return await read_events(response)


def over_sse(text: str) -> str:
    """What SSE can carry: a line break is CRLF, LF or CR on the wire, so a bare CR in the text
    arrives as LF (the event-stream format has no way to send one)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


async def test_generate_equals_hf_greedy(server_url, http, hf_greedy):
    status, body = await post(http, server_url + "/generate",
                              {"text": PROMPTS, "max_new_tokens": 40})
    assert status == 200
    assert body["text"] == [hf_greedy(p, 40) for p in PROMPTS]
    assert any(t.strip() for t in body["text"])  # the tiny model does say something


async def test_single_text_and_metadata(server_url, http, hf_greedy):
    status, body = await post(http, server_url + "/generate",
                              {"text": PROMPTS[0], "max_new_tokens": 12, "min_new_tokens": 12,
                               "return_metadata": True})
    assert status == 200
    assert body["text"] == hf_greedy(PROMPTS[0], 12)
    async with http.post(server_url + "/tokenize", json={"text": PROMPTS[0]}) as response:
        num_input_tokens = len((await response.json())["result"]["ids"])
    assert body["metadata"] == {"input_tokens": num_input_tokens, "generated_tokens": 12,
                                "finish_reason": "length"}


async def test_stream_joins_to_generate_byte_for_byte(server_url, http):
    """Seeded sampling from the tiny byte-level model writes newlines and non-ASCII text."""
    texts = []
    for seed in range(8):
        body = {"text": f"prompt {seed}: Café über", "max_new_tokens": 60, "min_new_tokens": 60,
                "sampling_topk": 0, "sampling_temperature": 1.0, "seed": seed}
        status, answer = await post(http, server_url + "/generate", body)
        assert status == 200
        events = await stream(http, server_url, body)
        assert events[-1].event == "metadata"
        metadata = json.loads(events[-1].data)
        assert (metadata["generated_tokens"], metadata["finish_reason"]) == (60, "length")
        assert joined_text(events) == over_sse(answer["text"])
        texts.append(answer["text"])
    assert any("\n" in t for t in texts)
    assert any(not t.isascii() for t in texts)
    assert len(set(texts)) == len(texts)  # the seeds matter


async def test_multi_line_pieces_use_multi_line_data(server_url, http):
    """On the wire a piece holding a newline is several `data:` lines of one event."""
    body = {"text": "prompt 1: Café über", "max_new_tokens": 60, "min_new_tokens": 60,
            "sampling_topk": 0, "seed": 1}
    async with http.post(server_url + "/generate_stream", json=body) as response:
        raw = await response.read()
    events = raw.decode().split("\r\n\r\n")
    assert any(e.count("data:") > 1 and "event:" not in e for e in events)


async def test_seed_gives_the_same_text_in_any_batch(server_url, http):
    body = {"max_new_tokens": 30, "sampling_topk": 0, "seed": 7}
    _, alone = await post(http, server_url + "/generate", {"text": "hello", **body})
    _, batched = await post(http, server_url + "/generate",
                            {"text": ["other", "hello", "more text"], **body})
    assert batched["text"][1] == alone["text"]


async def test_stop_sequence_is_not_returned(server_url, http, hf_greedy):
    full = hf_greedy(PROMPTS[0], 40)
    stop = full.strip()[3:6]
    assert stop and stop in full
    status, body = await post(http, server_url + "/generate",
                              {"text": PROMPTS[0], "max_new_tokens": 40, "stop": [stop],
                               "return_metadata": True})
    assert status == 200
    assert body["text"] == full[:full.index(stop)]
    assert body["metadata"]["finish_reason"] == "stop_sequence"
    events = await stream(http, server_url, {"text": PROMPTS[0], "max_new_tokens": 40,
                                             "stop": stop})
    assert joined_text(events) == body["text"]


async def test_prompt_max_tokens_truncates_and_long_input_is_413(server_url, http):
    long_text = "the numbers in the forecast were wrong " * 60
    status, body = await post(http, server_url + "/generate", {"text": long_text})
    assert_api_error(status, body, 413, "text")
    status, body = await post(http, server_url + "/generate",
                              {"text": long_text, "prompt_max_tokens": 20, "max_new_tokens": 4,
                               "return_metadata": True})
    assert status == 200
    assert body["metadata"]["input_tokens"] == 20


async def test_a_server_cap_below_the_default_clamps_it(server_factory, http, hf_greedy):
    """`--max-new-tokens 16` with no max_new_tokens in the body: the default (128) is clamped to
    the cap; asking for more than the cap is a 400 naming the field."""
    url = server_factory(max_new_tokens=16)
    status, answer = await post(http, url + "/generate",
                                {"text": PROMPTS[0], "return_metadata": True})
    assert status == 200, answer
    assert answer["metadata"]["generated_tokens"] <= 16
    assert answer["text"] == hf_greedy(PROMPTS[0], 16)
    async with http.post(url + "/generate_stream", json={"text": PROMPTS[0]}) as response:
        assert response.status == 200
        events = await read_events(response)
    assert [e.event for e in events][-1] == "metadata"
    assert joined_text(events) == answer["text"]
    status, answer = await post(http, url + "/generate", {"text": PROMPTS[0], "max_new_tokens": 17})
    assert_api_error(status, answer, 400, "max_new_tokens")
