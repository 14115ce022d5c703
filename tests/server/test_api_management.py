"""Readers at run time: a manifest at start-up, a reader added while others serve, one removed
after its requests finish, and the errors a bad request to the management API gets."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from takeoff.config import ServerConfig, config_from
from takeoff.engine.readers import load_readers
from tests.runners import slow_runner
from tests.server.helpers import assert_api_error
from tests.tiny_models import save_tiny_t5


def test_a_manifest_names_the_start_up_readers(tmp_path, tiny_t5_dir, tiny_classifier_dir):
    manifest = tmp_path / "takeoff.yaml"
    manifest.write_text(f"""
takeoff:
  readers_config:
    rewriter:
      model_name: {tiny_t5_dir}
      device: cpu
      consumer_group: primary
      max_batch_size: 3
      max_sequence_length: 20
    labels:
      model_name: {tiny_classifier_dir}
      consumer_group: classifier
      backend: ignored-here
""")
    config = config_from({"config_file": str(manifest)}, {})
    readers = load_readers(config)
    assert [(r.reader_id, r.info.group, r.info.task.value) for r in readers] == [
        ("rewriter", "primary", "generate"), ("labels", "classifier", "classify")]
    assert (readers[0].info.max_batch_size, readers[0].info.max_input_len) == (3, 20)


@pytest.mark.parametrize("text, message", [
    ("takeoff: {readers_config: {}}", "no readers"),
    ("takeoff: {readers_config: {a: {device: cpu}}}", "model_name"),
    ("takeoff: {readers_config: {a: {model_name: x, consumer_group: g, max_batch_size: 0}}}",
     "max_batch_size"),
    ("takeoff: {readers_config: {a: {model_name: x, consumer_group: g, colour: red}}}", "colour"),
    ("takeoff: [unclosed", "YAML"),
])
def test_a_bad_manifest_is_one_clear_line(tmp_path, text, message):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_readers(ServerConfig(config_file=str(manifest)))


async def test_a_removed_reader_finishes_its_requests_first(server_factory, tmp_path):
    url = server_factory(runner_factory=slow_runner, drain_timeout=20)
    other = save_tiny_t5(tmp_path / "other", seed=5)
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/reader", json={"model_name": str(other),
                                                    "consumer_group": "leaving"}) as created:
            assert created.status == 201
            reader_id = (await created.json())["reader_id"]
        body = {"text": "still running", "consumer_group": "leaving", "max_new_tokens": 40,
                "min_new_tokens": 40}
        running = asyncio.create_task(http.post(url + "/generate", json=body))
        await asyncio.sleep(0.2)
        async with http.delete(f"{url}/reader/{reader_id}") as deleted:
            assert deleted.status == 200
            assert running.done()  # the delete answered only after the request was done
        finished = await running
        assert finished.status == 200 and (await finished.json())["text"]
        async with http.post(url + "/generate", json=body) as gone:
            assert_api_error(gone.status, await gone.json(), 404, "consumer_group")
        async with http.delete(f"{url}/reader/{reader_id}") as again:
            assert again.status == 404


@pytest.mark.parametrize("body, status, param", [
    ({"device": "cpu"}, 400, None),
    ({"model_name": "/no/such/dir", "consumer_group": "x"}, 400, "model_name"),
    ({"model_name": "TINY_T5", "consumer_group": "primary"}, 409, "model_name"),
    ({"model_name": "TINY_T5", "consumer_group": "classifier"}, 400, "consumer_group"),
    ({"model_name": "TINY_CLASSIFIER", "consumer_group": "primary"}, 400, "consumer_group"),
])
async def test_bad_reader_requests(server_url, tiny_t5_dir, tiny_classifier_dir, body, status,
                                   param):
    body = {k: str(tiny_t5_dir) if v == "TINY_T5" else str(tiny_classifier_dir)
            if v == "TINY_CLASSIFIER" else v for k, v in body.items()}
    async with aiohttp.ClientSession() as http:
        async with http.post(server_url + "/reader", json=body) as answer:
            assert_api_error(answer.status, await answer.json(), status,
                             param if param is not None else "")
