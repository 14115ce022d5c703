"""Classification, tokens, consumer groups, readiness, metrics and the API key."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from takeoff.feedback.task import LABELS
from tests.server.helpers import assert_api_error, metric


async def get(http, url):
    async with http.get(url) as response:
        return response.status, await response.json()


async def post(http, url, body, headers=None):
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_classify_rows_match_hf_and_sum_to_one(server_url, http, tiny_classifier_dir):
    inputs = ["Great demo, thanks!", ["You never listen.", "Context: a review"], "Why?"]
    status, body = await post(http, server_url + "/classify", {"text": inputs})
    assert status == 200
    assert body["labels"] == list(LABELS)
    assert len(body["result"]) == 3
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_classifier_dir)
    for row, text in zip(body["result"], inputs):
        assert len(row) == len(LABELS)
        assert sum(row) == pytest.approx(1.0, abs=1e-5)
        pair = (text, None) if isinstance(text, str) else tuple(text)
        with torch.inference_mode():
            expected = model(**tokenizer(*pair, return_tensors="pt")).logits.softmax(-1)[0]
        assert row == pytest.approx(expected.tolist(), abs=1e-5)
    status, single = await post(http, server_url + "/classify",
                                {"text": "Why?", "consumer_group": "classifier"})
    assert status == 200
    assert single["result"][0] == pytest.approx(body["result"][2], abs=1e-6)  # alone, unpadded


async def test_tokenize_uses_the_groups_tokenizer(server_url, http, tiny_t5_dir,
                                                  tiny_classifier_dir):
    for group, directory in (("primary", tiny_t5_dir), ("classifier", tiny_classifier_dir)):
        tokenizer = AutoTokenizer.from_pretrained(directory)
        status, body = await post(http, server_url + "/tokenize",
                                  {"text": "Café report\nline two", "consumer_group": group})
        assert status == 200
        ids = tokenizer("Café report\nline two")["input_ids"]
        assert body["result"] == {"ids": ids, "tokens": tokenizer.convert_ids_to_tokens(ids)}
    _, default = await post(http, server_url + "/tokenize", {"text": "Café report\nline two"})
    assert default["result"]["ids"] == AutoTokenizer.from_pretrained(tiny_t5_dir)(
        "Café report\nline two")["input_ids"]


async def test_reader_groups_describe_both_models(server_url, http, tiny_t5_dir,
                                                  tiny_classifier_dir):
    status, groups = await get(http, server_url + "/reader_groups")
    assert status == 200
    assert set(groups) == {"primary", "classifier"}
    generator, = groups["primary"]
    classifier, = groups["classifier"]
    assert (generator["task"], generator["model_name"]) == ("generate", str(tiny_t5_dir))
    assert (classifier["task"], classifier["model_name"]) == ("classify",
                                                              str(tiny_classifier_dir))
    assert generator["device"] == "cpu" and generator["dtype"] == "float32"
    assert generator["max_new_tokens"] == 256 and generator["max_batch_size"] == 8
    assert classifier["max_input_len"] == 64  # the tiny ELECTRA's 64 positions


async def test_health_ready_and_metrics(server_url, http):
    assert await get(http, server_url + "/health") == (200, {"status": "ok"})
    assert await get(http, server_url + "/ready") == (200, {"status": "ready"})
    before = await metric(http, server_url, "takeoff_requests_total",
                          'endpoint="/generate",status="200"')
    tokens_before = await metric(http, server_url, "takeoff_generated_tokens_total")
    await post(http, server_url + "/generate", {"text": "count me", "max_new_tokens": 3,
                                                "min_new_tokens": 3})
    await post(http, server_url + "/generate", {"text": 5})
    assert await metric(http, server_url, "takeoff_requests_total",
                        'endpoint="/generate",status="200"') == before + 1
    assert await metric(http, server_url, "takeoff_requests_total",
                        'endpoint="/generate",status="400"') >= 1
    assert await metric(http, server_url, "takeoff_generated_tokens_total") == tokens_before + 3
    async with http.get(server_url + "/metrics") as response:
        text = await response.text()
    for name in ("takeoff_queue_length", "takeoff_running_batch_size", "takeoff_kv_slots_in_use",
                 "takeoff_time_to_first_token_seconds_bucket",
                 "takeoff_inter_token_latency_seconds_bucket",
                 'takeoff_step_duration_seconds_count{kind="decode"}',
                 'takeoff_step_duration_seconds_count{kind="prefill"}'):
        assert name in text


async def test_api_key(server_factory, http):
    url = server_factory(api_key="s3cret")
    body = {"text": "hi", "max_new_tokens": 2}
    for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                    {"Authorization": "Basic s3cret"}):
        status, answer = await post(http, url + "/generate", body, headers)
        assert_api_error(status, answer, 401)
    for path in ("/ready", "/metrics", "/reader_groups", "/nope"):
        async with http.get(url + path) as response:
            assert response.status == 401
    assert (await get(http, url + "/health"))[0] == 200
    async with http.get(url + "/") as page:  # the web page loads; its API calls send the key
        assert page.status == 200
    good = {"Authorization": "Bearer s3cret"}
    status, answer = await post(http, url + "/generate", body, good)
    assert status == 200 and isinstance(answer["text"], str)
    async with http.get(url + "/ready", headers=good) as response:
        assert response.status == 200


async def test_classifier_only_server(server_factory, http):
    url = server_factory(model=None)
    status, groups = await get(http, url + "/reader_groups")
    assert status == 200 and set(groups) == {"classifier"}
    status, body = await post(http, url + "/classify", {"text": "fine"})
    assert status == 200 and len(body["result"][0]) == len(LABELS)
    status, body = await post(http, url + "/generate", {"text": "no generator here"})
    assert_api_error(status, body, 404, "consumer_group")


async def test_generator_only_server(server_factory, http):
    url = server_factory(classifier=None, generator_group="rewriter")
    status, groups = await get(http, url + "/reader_groups")
    assert status == 200 and set(groups) == {"rewriter"}
    status, body = await post(http, url + "/generate", {"text": "hello",
                                                        "consumer_group": "rewriter",
                                                        "max_new_tokens": 2})
    assert status == 200
    status, body = await post(http, url + "/classify", {"text": "no classifier"})
    assert_api_error(status, body, 404, "consumer_group")
