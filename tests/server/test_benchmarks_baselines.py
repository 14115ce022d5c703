"""The baseline servers answer as Hugging Face `generate` would, batched with other requests."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import aiohttp
import pytest
import torch
import uvicorn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, T5ForConditionalGeneration

from benchmarks.baselines.ct2 import CT2Generator
from benchmarks.baselines.hf import HFClassifier, HFGenerator
from benchmarks.baselines.server import build_app, run_in_worker
from tests.tiny_models import CORPUS

PROMPTS = CORPUS[:5]
MAX_NEW_TOKENS = 24


@contextlib.contextmanager
def serving(app):
    """The app on a free 127.0.0.1 port, in a thread of this process."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the baseline server did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture(scope="module")
def hf_url(tiny_t5_dir, tiny_classifier_dir):
    generator = HFGenerator(str(tiny_t5_dir))
    classifier = HFClassifier(str(tiny_classifier_dir))
    app = build_app(run_in_worker(generator.generate), run_in_worker(classifier.classify),
                    classifier.labels, max_batch_size=8, max_wait_ms=50)
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def ct2_url(tiny_t5_dir, tmp_path_factory):
    generator = CT2Generator(str(tiny_t5_dir), tmp_path_factory.mktemp("ct2"), threads=1)
    with serving(build_app(generator.generate, max_batch_size=8, max_wait_ms=50)) as url:
        yield url


@pytest.fixture(scope="module")
def reference(tiny_t5_dir):
    """HF generate on one text at a time: (text, generated tokens with the EOS)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_t5_dir)
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_dir).eval()

    def generate(text: str, min_new_tokens: int = 0) -> tuple[str, int]:
        with torch.inference_mode():
            ids = model.generate(**tokenizer(text, return_tensors="pt"), do_sample=False,
                                 max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=min_new_tokens)[0]
        return tokenizer.decode(ids, skip_special_tokens=True), len(ids) - 1
    return generate


async def generate_all(url: str, bodies: list[dict]) -> list[dict]:
    """All at once, so that they share batches."""
    async with aiohttp.ClientSession() as http:
        async def one(body):
            async with http.post(url + "/generate", json={**body, "return_metadata": True}) as r:
                assert r.status == 200, await r.text()
                return await r.json()
        return await asyncio.gather(*(one(b) for b in bodies))


@pytest.mark.parametrize("baseline", ["hf_url", "ct2_url"])
async def test_a_baseline_answers_with_hugging_faces_greedy_text(baseline, request, reference):
    url = request.getfixturevalue(baseline)
    answers = await generate_all(url, [{"text": p, "max_new_tokens": MAX_NEW_TOKENS}
                                       for p in PROMPTS])
    expected = [reference(p) for p in PROMPTS]
    assert [(a["text"], a["metadata"]["generated_tokens"]) for a in answers] == expected
    assert len({n for _, n in expected}) > 1  # rows of different lengths shared a batch


async def test_the_hf_baseline_keeps_each_requests_min_new_tokens(hf_url, reference):
    bodies = [{"text": p, "max_new_tokens": MAX_NEW_TOKENS, "min_new_tokens": m}
              for p, m in zip(PROMPTS, (0, 0, 23, 12, 0))]
    answers = await generate_all(hf_url, bodies)
    expected = [reference(b["text"], b["min_new_tokens"]) for b in bodies]
    assert [(a["text"], a["metadata"]["generated_tokens"]) for a in answers] == expected
    # Prompt 1 ends early, prompt 2 only because of its minimum: one batch-wide minimum fails.
    assert expected[1][1] < 12 and reference(PROMPTS[2])[1] < 23 <= expected[2][1]


async def test_the_hf_baseline_classifies_as_the_model_does(hf_url, tiny_classifier_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_classifier_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir).eval()
    with torch.inference_mode():
        logits = model(**tokenizer(PROMPTS, padding=True, return_tensors="pt")).logits
    async with aiohttp.ClientSession() as http:
        async with http.post(hf_url + "/classify", json={"text": PROMPTS}) as response:
            answer = await response.json()
    assert answer["labels"] == [model.config.id2label[i] for i in range(len(answer["labels"]))]
    assert torch.allclose(torch.tensor(answer["result"]), logits.softmax(-1), atol=1e-5)


async def test_a_baseline_refuses_sampling_it_does_not_do(hf_url):
    async with aiohttp.ClientSession() as http:
        async with http.post(hf_url + "/generate", json={"text": "hi", "sampling_topk": 5}) as r:
            assert r.status == 400
            assert "greedily" in (await r.json())["error"]["message"]
