"""LoRA adapters that come and go while the server runs (POST /reader/{id}/lora, DELETE
/reader/{id}/lora/{name}), a removal that waits for the requests using the adapter, a 400 naming
the problem for each bad adapter while the reader keeps serving, and adapters given at start-up
(--lora, a manifest's loras) with the clear error a bad one gets."""
from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from benchmarks.models import save_random_lora
from kernels.lora_adapter import LoraError
from takeoff.cli import main
from takeoff.config import config_from
from takeoff.engine.readers import load_readers
from tests.runners import slow_runner
from tests.server.helpers import assert_api_error

PROMPT = "Your report was late again."
READER = "primary-0"


@pytest.fixture(scope="module")
def server(server_factory):
    """A slow-stepping server with no adapters at start and room for two."""
    return server_factory.server(runner_factory=slow_runner, max_loras=2)


@pytest.fixture(scope="module")
def url(server) -> str:
    return server.url


async def call(http, method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    async with http.request(method, url, json=body) as response:
        return response.status, await response.json()


async def add(http, url: str, name: str, path) -> tuple[int, dict]:
    return await call(http, "POST", f"{url}/reader/{READER}/lora",
                      {"lora_id": name, "path": str(path)})


async def remove(http, url: str, name: str) -> tuple[int, dict]:
    return await call(http, "DELETE", f"{url}/reader/{READER}/lora/{name}")


async def listed(http, url: str) -> list[str]:
    _, groups = await call(http, "GET", url + "/reader_groups")
    return [a["lora_id"] for a in groups["primary"][0]["loras"]]


async def generate(http, url: str, lora: str | None, max_new_tokens: int = 20, **fields):
    body = {"text": PROMPT, "max_new_tokens": max_new_tokens, **fields}
    return await call(http, "POST", url + "/generate", body | ({"lora_id": lora} if lora else {}))


async def test_an_adapter_added_at_run_time_serves_until_it_is_removed(url, http, lora_dirs,
                                                                        peft_greedy):
    status, described = await add(http, url, "ff-regex", lora_dirs["ff-regex"])
    assert status == 201
    assert described == {"lora_id": "ff-regex", "path": lora_dirs["ff-regex"], "r": 2,
                         "lora_alpha": 4, "target_modules": ["wi_1", "wo"]}
    assert await listed(http, url) == ["ff-regex"]
    status, answer = await generate(http, url, "ff-regex")
    assert (status, answer["text"]) == (200, peft_greedy(PROMPT, 20, "ff-regex"))
    assert answer["text"] != peft_greedy(PROMPT, 20)
    _, models = await call(http, "GET", url + "/v1/models")
    assert ("ff-regex", "primary") in [(m["id"], m["parent"]) for m in models["data"]]

    status, removed = await remove(http, url, "ff-regex")
    assert (status, removed) == (200, {"reader_id": READER, "lora_id": "ff-regex",
                                       "removed": True})
    assert await listed(http, url) == []
    status, error = await generate(http, url, "ff-regex")
    assert_api_error(status, error, 404, "lora_id")
    status, error = await remove(http, url, "ff-regex")
    assert_api_error(status, error, 404, "lora_id")


async def test_a_removal_refuses_new_requests_at_once_and_waits_for_running_ones(
        server, http, lora_dirs, peft_greedy):
    url = server.url
    assert (await add(http, url, "qv", lora_dirs["qv"]))[0] == 201
    running = asyncio.create_task(generate(http, url, "qv", 60, min_new_tokens=60))
    while not server.engine.snapshot.num_running:
        await asyncio.sleep(0.01)
    removal = asyncio.create_task(remove(http, url, "qv"))
    await asyncio.sleep(0.1)
    status, error = await generate(http, url, "qv")  # refused while the removal waits
    assert_api_error(status, error, 404, "lora_id")
    assert not running.done() and not removal.done()
    status, answer = await running
    assert (status, answer["text"]) == (200, peft_greedy(PROMPT, 60, "qv", min_new_tokens=60))
    assert (await removal)[0] == 200
    assert await listed(http, url) == []
    assert (await generate(http, url, None))[0] == 200


def with_config(path: Path, **changes) -> Path:
    config = json.loads((path / "adapter_config.json").read_text())
    (path / "adapter_config.json").write_text(json.dumps({**config, **changes}))
    return path


def without_weights(path: Path) -> Path:
    (path / "adapter_model.safetensors").unlink()
    return path


# what is wrong -> (what to send, made from a copy of a good adapter's directory; what the 400 says)
SPOILED = {
    "not a directory": (lambda p: p / "adapter_config.json", "is not a directory"),
    "a missing file": (without_weights, "has no adapter_model.safetensors"),
    "not LoRA": (lambda p: with_config(p, peft_type="IA3"), "is a 'IA3' adapter; only LoRA"),
    "modules_to_save": (lambda p: with_config(p, modules_to_save=["lm_head"]),
                        "uses modules_to_save"),
}


@pytest.mark.parametrize("problem", SPOILED)
async def test_each_bad_adapter_is_a_400_naming_the_problem_and_the_reader_keeps_serving(
        url, http, lora_dirs, tmp_path, problem):
    spoil, message = SPOILED[problem]
    path = spoil(Path(shutil.copytree(lora_dirs["qv"], tmp_path / "adapter")))
    await assert_refused(http, url, path, message)


@pytest.fixture(scope="module")
def foreign_loras(tiny_t5_shape_dir, tmp_path_factory) -> dict[str, Path]:
    """Adapters of other bases: one of other widths, one of a feed-forward with other names."""
    root = tmp_path_factory.mktemp("foreign-loras")
    return {"shapes": save_random_lora(tiny_t5_shape_dir("gated-gelu-tied-wide"),
                                       root / "wide", r=4, target_modules=["q", "v"]),
            "targets": save_random_lora(tiny_t5_shape_dir("relu-tied"), root / "relu", r=4,
                                        target_modules=["wi"])}


@pytest.mark.parametrize("kind, message", [
    ("shapes", "has lora_A [4, 48]"),
    ("targets", "which is not an attention or feed-forward linear of this base model"),
])
async def test_an_adapter_of_another_base_is_a_400(url, http, foreign_loras, kind, message):
    await assert_refused(http, url, foreign_loras[kind], message)
    assert "another base" in (await add(http, url, "spoiled", foreign_loras[kind]))[1][
        "error"]["message"]


async def assert_refused(http, url: str, path, message: str) -> None:
    status, error = await add(http, url, "spoiled", path)
    assert_api_error(status, error, 400, "path")
    assert "'spoiled'" in error["error"]["message"] and message in error["error"]["message"]
    assert await listed(http, url) == []
    assert (await generate(http, url, None))[0] == 200


async def test_a_taken_name_a_full_reader_and_a_bad_name_are_400s(url, http, lora_dirs):
    assert (await add(http, url, "qv", lora_dirs["qv"]))[0] == 201
    status, error = await add(http, url, "qv", lora_dirs["all-rslora"])
    assert_api_error(status, error, 400, "lora_id")
    assert "already has an adapter named 'qv'" in error["error"]["message"]
    assert (await add(http, url, "all-rslora", lora_dirs["all-rslora"]))[0] == 201
    status, error = await add(http, url, "ff-regex", lora_dirs["ff-regex"])
    assert_api_error(status, error, 400, "lora_id")
    assert "--max-loras 2" in error["error"]["message"]
    for name in ("qv", "all-rslora"):
        assert (await remove(http, url, name))[0] == 200
    for name in ("primary", "two words", ""):
        status, error = await add(http, url, name, lora_dirs["qv"])
        assert_api_error(status, error, 400, "lora_id")
    assert await listed(http, url) == []


async def test_adapters_on_readers_that_are_not_generators_or_do_not_exist(url, http,
                                                                           lora_dirs):
    status, error = await call(http, "POST", f"{url}/reader/classifier-0/lora",
                               {"lora_id": "qv", "path": lora_dirs["qv"]})
    assert_api_error(status, error, 400, "reader_id")
    status, error = await call(http, "POST", f"{url}/reader/nobody/lora",
                               {"lora_id": "qv", "path": lora_dirs["qv"]})
    assert_api_error(status, error, 404, "reader_id")
    status, error = await call(http, "DELETE", f"{url}/reader/nobody/lora/qv")
    assert_api_error(status, error, 404, "reader_id")


async def test_a_reader_added_at_run_time_brings_the_adapters_its_config_names(
        url, http, tiny_t5_dir, tiny_classifier_dir, lora_dirs, peft_greedy):
    status, reader = await call(http, "POST", url + "/reader", {
        "model_name": str(tiny_t5_dir), "consumer_group": "tuned",
        "loras": {"qv": lora_dirs["qv"]}})
    assert status == 201 and [a["lora_id"] for a in reader["loras"]] == ["qv"]
    status, answer = await generate(http, url, "qv", consumer_group="tuned")
    assert (status, answer["text"]) == (200, peft_greedy(PROMPT, 20, "qv"))
    assert (await call(http, "DELETE", f"{url}/reader/{reader['reader_id']}"))[0] == 200
    status, error = await call(http, "POST", url + "/reader", {
        "model_name": str(tiny_classifier_dir), "consumer_group": "labels",
        "loras": {"qv": lora_dirs["qv"]}})
    assert_api_error(status, error, 400, "loras")
    assert "apply to a generator" in error["error"]["message"]


def test_a_manifests_loras_are_loaded_with_their_reader(tmp_path, tiny_t5_dir, lora_dirs):
    manifest = tmp_path / "takeoff.yaml"
    manifest.write_text(f"""
takeoff:
  readers_config:
    rewriter:
      model_name: {tiny_t5_dir}
      consumer_group: primary
      loras:
        qv: {lora_dirs["qv"]}
        ff-regex: {lora_dirs["ff-regex"]}
""")
    reader, = load_readers(config_from({"config_file": str(manifest)}, {}))
    assert list(reader.loras.serving) == ["qv", "ff-regex"]
    assert [a.name for a in reader.new_adapters] == ["qv", "ff-regex"]
    assert reader.spec.config()["loras"] == {"qv": lora_dirs["qv"],
                                             "ff-regex": lora_dirs["ff-regex"]}


@pytest.mark.parametrize("name, path, error, message", [
    ("tone", "/no/such/adapter", LoraError, "adapter 'tone': /no/such/adapter does not exist"),
    ("primary", "QV", ValueError, "reader rewriter: adapter 'primary' has the name of a consumer"),
    ("two words", "QV", ValueError, "reader rewriter: loras.two words"),
])
def test_a_bad_adapter_in_a_manifest_is_a_clear_start_up_error(tmp_path, tiny_t5_dir, lora_dirs,
                                                               name, path, error, message):
    manifest = tmp_path / "takeoff.yaml"
    loras = {name: lora_dirs["qv"] if path == "QV" else path}
    manifest.write_text(json.dumps({"takeoff": {"readers_config": {"rewriter": {
        "model_name": str(tiny_t5_dir), "consumer_group": "primary", "loras": loras}}}}))
    with pytest.raises(error, match=message):
        load_readers(config_from({"config_file": str(manifest)}, {}))


@pytest.mark.parametrize("args, code, message", [
    (["--lora", "tone=/no/such/adapter"], 1, "adapter 'tone': /no/such/adapter does not exist"),
    (["--lora", "tone"], 2, "--lora 'tone': expected NAME=DIR"),
    (["--lora", "primary=QV"], 2, "names a consumer group"),
    (["--lora", "a=QV", "--lora", "b=QV", "--max-loras", "1"], 2, "more than --max-loras 1"),
])
def test_a_bad_lora_flag_is_one_clear_line(tiny_t5_dir, lora_dirs, capsys, monkeypatch, args,
                                           code, message):
    monkeypatch.delenv("TAKEOFF_LORA", raising=False)
    args = [a.replace("QV", lora_dirs["qv"]) for a in args]
    assert main(["serve", "--model", str(tiny_t5_dir), *args]) == code
    stderr = capsys.readouterr().err  # (above it, transformers' progress bar of the base's weights)
    assert message in stderr.strip().splitlines()[-1] and "Traceback" not in stderr
