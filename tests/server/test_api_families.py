"""A model's generation_config.json and a request's target_prefix, through the server's HTTP APIs.

The Marian here ships opus-mt's generation_config.json (num_beams 4, <pad> a bad word, forced
EOS, max_length 512): with `--generation-config auto` (the default) /generate decodes as
Hugging Face's generate() does with that file, beam search included, beside other requests;
/reader_groups shows those defaults; `ignore` leaves Takeoff's greedy defaults. target_prefix
starts the output as generate's decoder_input_ids do, on /generate, /generate_stream and the
OpenAI API, and a prefix the reader cannot take is a 400 naming it.
"""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig

from tests.family_models import save_tiny_family
from tests.server.helpers import assert_api_error, joined_text, read_events

TEXTS = ["Thanks for the clear sprint demo", "The onboarding guide is confusing.",
         "Please review the release notes", "The build failed twice this week"]
PREFIX = "thanks for"


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    path = save_tiny_family(tmp_path_factory.mktemp("opus"), "marian")
    return path, AutoModelForSeq2SeqLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def hf_text(marian, text: str, max_new_tokens: int, prefix: str | None = None, **options) -> str:
    """generate() with the model's own generation_config (or `generation_config=`); a prefix is
    decoder_input_ids after the start token and counts in max_new_tokens, as the server counts it."""
    _, model, tokenizer = marian
    prefix_ids = tokenizer(text_target=prefix, add_special_tokens=False)["input_ids"] if prefix else []
    start = model.generation_config.decoder_start_token_id
    with torch.inference_mode():
        out = model.generate(torch.tensor([tokenizer(text)["input_ids"]]),
                             decoder_input_ids=torch.tensor([[start, *prefix_ids]]),
                             max_new_tokens=max_new_tokens - len(prefix_ids), **options)
    return tokenizer.decode(out[0, 1:], skip_special_tokens=True)


async def post(http, url: str, body: dict) -> tuple[int, dict]:
    async with http.post(url, json=body) as answer:
        return answer.status, await answer.json()


async def test_generation_config_decodes_as_generate_beams_included(server_factory, marian):
    url = server_factory(model=str(marian[0]))
    bodies = [{"text": text, "max_new_tokens": 12, "consumer_group": "primary"} for text in TEXTS]
    bodies[1]["num_beams"] = bodies[3]["num_beams"] = 1  # greedy requests in the same batch
    async with aiohttp.ClientSession() as http:
        answers = await asyncio.gather(*(post(http, url + "/generate", body) for body in bodies))
        status, groups = await post_get(http, url + "/reader_groups")
    assert [status for status, _ in answers] == [200] * 4, answers
    expected = [hf_text(marian, body["text"], 12, **({"num_beams": 1} if "num_beams" in body else {}))
                for body in bodies]
    assert [body["text"] for _, body in answers] == expected
    assert expected[0] != hf_text(marian, TEXTS[0], 12, num_beams=1) or expected[2] != hf_text(
        marian, TEXTS[2], 12, num_beams=1), "beam search should change some answer"
    defaults = groups["primary"][0]["sampling_defaults"]
    pad = marian[2].pad_token_id
    assert defaults["num_beams"] == 4 and defaults["bad_words_ids"] == [[pad]]
    assert defaults["forced_eos_token_ids"] == [0] and defaults["max_new_tokens"] == 256  # 511 capped


async def post_get(http, url: str) -> tuple[int, dict]:
    async with http.get(url) as answer:
        return answer.status, await answer.json()


async def test_generation_config_ignore_leaves_takeoffs_defaults(server_factory, marian):
    url = server_factory(model=str(marian[0]), generation_config="ignore")
    _, model, _ = marian
    own = model.generation_config
    async with aiohttp.ClientSession() as http:
        status, body = await post(http, url + "/generate", {"text": TEXTS[0], "max_new_tokens": 12})
        _, groups = await post_get(http, url + "/reader_groups")
    try:  # replaced, not passed: generate would fill a passed config from the model's own
        model.generation_config = GenerationConfig(decoder_start_token_id=own.decoder_start_token_id,
                                                   eos_token_id=own.eos_token_id, pad_token_id=own.pad_token_id)
        expected = hf_text(marian, TEXTS[0], 12)
    finally:
        model.generation_config = own
    assert status == 200
    assert body["text"] == expected != hf_text(marian, TEXTS[0], 12)
    assert groups["primary"][0]["sampling_defaults"] == {}


async def test_target_prefix_starts_the_output_on_every_api(server_factory, marian):
    url = server_factory(model=str(marian[0]))
    greedy = {"max_new_tokens": 12, "num_beams": 1, "target_prefix": PREFIX}
    async with aiohttp.ClientSession() as http:
        beams = await post(http, url + "/generate", {"text": TEXTS[0], "max_new_tokens": 12,
                                                     "target_prefix": PREFIX})
        single = await post(http, url + "/generate", {"text": TEXTS[1], **greedy})
        async with http.post(url + "/generate_stream", json={"text": TEXTS[2], **greedy}) as answer:
            assert answer.status == 200
            streamed = joined_text(await read_events(answer))
        completion = await post(http, url + "/v1/completions", {
            "model": "primary", "prompt": TEXTS[3], "max_tokens": 12, "temperature": 0,
            "target_prefix": PREFIX})
    assert beams == (200, {"text": hf_text(marian, TEXTS[0], 12, PREFIX)})
    assert single == (200, {"text": hf_text(marian, TEXTS[1], 12, PREFIX, num_beams=1)})
    assert streamed == hf_text(marian, TEXTS[2], 12, PREFIX, num_beams=1)
    assert completion[0] == 200 and completion[1]["choices"][0]["text"] == hf_text(marian, TEXTS[3], 12, PREFIX)
    assert all(text.lower().startswith(PREFIX) for text in (beams[1]["text"], single[1]["text"], streamed))


@pytest.mark.parametrize("body, reason", [
    ({"target_prefix": ""}, "at least 1 character"),
    ({"target_prefix": "ʘ‿ʘ"}, "cannot encode"),
    ({"target_prefix": "thanks for the clear sprint demo", "max_new_tokens": 3}, "more than max_new_tokens"),
])
async def test_a_target_prefix_the_reader_cannot_take_is_a_400(server_factory, marian, body, reason):
    url = server_factory(model=str(marian[0]))
    openai = {"max_tokens" if key == "max_new_tokens" else key: value for key, value in body.items()}
    async with aiohttp.ClientSession() as http:
        for path, request in (("/generate", {"text": TEXTS[0], **body}),
                              ("/generate_stream", {"text": TEXTS[0], **body}),
                              ("/v1/completions", {"model": "primary", "prompt": TEXTS[0], **openai})):
            status, answer = await post(http, url + path, request)
            assert_api_error(status, answer, 400, "target_prefix")
            assert reason in answer["error"]["message"], (path, answer)


async def test_a_target_prefix_with_a_grammar_is_a_400(server_factory, marian):
    url = server_factory(model=str(marian[0]))
    async with aiohttp.ClientSession() as http:
        status, answer = await post(http, url + "/generate", {"text": TEXTS[0], "target_prefix": PREFIX,
                                                              "regex_string": "[a-z ]+"})
    assert_api_error(status, answer, 400, "target_prefix")
    assert "regex" in answer["error"]["message"]
