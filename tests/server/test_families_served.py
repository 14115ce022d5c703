"""Generators of other families load through every path that loads one (a manifest, POST
/reader) and answer /generate with Hugging Face's text; an unsupported one is a 400 naming the
supported types."""
from __future__ import annotations

import aiohttp
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GPT2Config

from scheduler.request import Task
from takeoff.config import config_from
from takeoff.engine.readers import load_readers
from tests.family_models import save_tiny_family
from tests.server.helpers import assert_api_error

TEXTS = ["Thanks for the clear sprint demo", "The onboarding guide is confusing."]


def hf_text(path, text: str, max_new_tokens: int) -> str:
    """HF generate with the model's own generation_config (opus-mt's: a 4-beam search), as the
    server decodes it under --generation-config auto."""
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    with torch.inference_mode():
        out = model.generate(torch.tensor([tokenizer(text)["input_ids"]]), max_new_tokens=max_new_tokens)
    return tokenizer.decode(out[0, 1:], skip_special_tokens=True)


def test_a_manifest_loads_a_bart_and_a_bert2bert(tmp_path):
    bart = save_tiny_family(tmp_path / "bart", "bart", steps=5)
    b2b = save_tiny_family(tmp_path / "b2b", "bert2bert", steps=5)
    manifest = tmp_path / "takeoff.yaml"
    manifest.write_text(f"""
takeoff:
  readers_config:
    summaries: {{model_name: {bart}, consumer_group: primary}}
    b2b: {{model_name: {b2b}, consumer_group: rewrite}}
""")
    readers = load_readers(config_from({"config_file": str(manifest)}, {}))
    assert [(r.reader_id, r.info.task) for r in readers] == [("summaries", Task.GENERATE), ("b2b", Task.GENERATE)]


async def test_a_marian_reader_added_at_run_time_answers_as_hugging_face(server_url, tmp_path):
    path = save_tiny_family(tmp_path / "opus", "marian")
    async with aiohttp.ClientSession() as http:
        async with http.post(server_url + "/reader", json={"model_name": str(path),
                                                           "consumer_group": "translate"}) as created:
            assert created.status == 201, await created.text()
        answers = []
        for text in TEXTS:
            body = {"text": text, "consumer_group": "translate", "max_new_tokens": 12}
            async with http.post(server_url + "/generate", json=body) as answer:
                assert answer.status == 200
                answers.append((await answer.json())["text"])
        assert answers == [hf_text(path, text, 12) for text in TEXTS]
        assert all(answers) and answers[0] != answers[1]


async def test_an_unsupported_model_type_is_a_400_naming_the_supported_ones(server_url, tmp_path):
    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    async with aiohttp.ClientSession() as http:
        async with http.post(server_url + "/reader", json={"model_name": str(tmp_path),
                                                           "consumer_group": "x"}) as answer:
            body = await answer.json()
            assert_api_error(answer.status, body, 400, "model_name")
            assert "'gpt2'" in str(body) and "marian" in str(body) and "encoder-decoder" in str(body)
