"""Beam search over the OpenAI-compatible API, with the official `openai` package: extra body
fields (Takeoff's names, or vLLM's use_beam_search), n choices in order, streamed whole, and the
400s naming the field."""
from __future__ import annotations

import openai
import pytest
import torch
from transformers import AutoTokenizer, T5ForConditionalGeneration

from scheduler.sampling_params import SamplingParams
from takeoff.feedback.task import rewrite_prompt
from tests.model.beam_reference import hf_beams

PROMPTS = ["The onboarding guide is confusing.", "You never answer my messages"]


@pytest.fixture(scope="module")
def client(server_url):
    with openai.OpenAI(base_url=server_url + "/v1", api_key="unused", max_retries=0,
                       timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def reference(tiny_t5_dir):
    """HF generate(num_beams=...) on the server's model: each returned sequence's text."""
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_t5_dir)

    def texts(prompt: str, **fields) -> list[str]:
        with torch.inference_mode():
            found = hf_beams(model, tokenizer(prompt)["input_ids"], SamplingParams(**fields))
        return [tokenizer.decode(ids, skip_special_tokens=True) for ids, _ in found]

    return texts


def test_use_beam_search_returns_the_n_best_sequences_as_choices(client, reference):
    answer = client.completions.create(model="primary", prompt=PROMPTS, max_tokens=12, n=3,
                                       temperature=0, extra_body={"use_beam_search": True})
    expected = [t for p in PROMPTS for t in reference(p, num_beams=3, num_return_sequences=3,
                                                      max_new_tokens=12)]
    assert [c.index for c in answer.choices] == list(range(6))
    assert [c.text for c in answer.choices] == expected
    assert answer.usage.completion_tokens > 0


def test_takeoff_names_as_extra_fields_and_n_choices(client, reference):
    fields = dict(num_beams=4, length_penalty=0.0, early_stopping=True, max_new_tokens=10)
    answer = client.completions.create(model="primary", prompt=PROMPTS[0], max_tokens=10, n=2,
                                       extra_body={k: v for k, v in fields.items()
                                                   if k != "max_new_tokens"})
    assert [c.text for c in answer.choices] == reference(PROMPTS[0], num_return_sequences=2,
                                                         **fields)


def test_a_streamed_beam_search_sends_each_choice_whole(client, reference):
    chunks = list(client.completions.create(model="primary", prompt=PROMPTS[1], max_tokens=12,
                                            n=2, stream=True, temperature=0,
                                            extra_body={"use_beam_search": True}))
    texts = [(c.choices[0].index, c.choices[0].text) for c in chunks if c.choices[0].text]
    expected = reference(PROMPTS[1], num_beams=2, num_return_sequences=2, max_new_tokens=12)
    assert texts == [(i, t) for i, t in enumerate(expected) if t]
    assert sorted(c.choices[0].index for c in chunks if c.choices[0].finish_reason) == [0, 1]


def test_chat_with_beams_returns_n_messages(client, reference):
    messages = [{"role": "system", "content": "a design review"},
                {"role": "user", "content": PROMPTS[0]}]
    answer = client.chat.completions.create(model="primary", messages=messages, max_tokens=9,
                                            n=2, extra_body={"num_beams": 3})
    prompt = rewrite_prompt("a design review", PROMPTS[0])
    assert [c.message.content for c in answer.choices] == reference(
        prompt, num_beams=3, num_return_sequences=2, max_new_tokens=9)
    streamed = list(client.chat.completions.create(model="primary", messages=messages,
                                                   max_tokens=9, stream=True,
                                                   extra_body={"num_beams": 3}))
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == \
        answer.choices[0].message.content


@pytest.mark.parametrize("kwargs, param", [
    (dict(n=2), "n"),  # several choices need beam search
    (dict(extra_body={"num_beams": 2}, temperature=0.7), "num_beams"),  # beam sampling
    (dict(n=2, extra_body={"use_beam_search": True, "num_beams": 3}), "use_beam_search"),
    (dict(n=2, extra_body={"num_beams": 3, "num_return_sequences": 3}), "n"),
    (dict(extra_body={"num_beams": 2, "early_stopping": "soon"}), "early_stopping"),
    (dict(extra_body={"num_beams": 0}), "num_beams"),
    (dict(n=20, extra_body={"use_beam_search": True}), "n"),  # above --max-num-beams
    (dict(best_of=2), "best_of"),
])
def test_a_bad_beam_request_is_a_400_naming_the_field(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="primary", prompt=PROMPTS[0], max_tokens=4, **kwargs)
    assert caught.value.body["param"] == param, caught.value.body
