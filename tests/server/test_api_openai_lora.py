"""LoRA adapters on the OpenAI API, as vLLM names them: an adapter's name is a `model`, listed in
/v1/models with its consumer group as `parent`, and runs the group's base with that adapter."""
from __future__ import annotations

import openai
import pytest

from tests.server.helpers import assert_api_error

PROMPT = "Your report was late again."


async def test_v1_models_lists_each_adapter_with_its_group_as_parent(lora_server, http):
    async with http.get(lora_server.url + "/v1/models") as response:
        cards = (await response.json())["data"]
    assert [(c["id"], c["parent"], c["task"]) for c in cards] == [
        ("primary", None, "generate"), ("qv", "primary", "generate"),
        ("all-rslora", "primary", "generate"), ("classifier", None, "classify")]


async def test_an_adapters_name_as_the_model_runs_it(lora_server, peft_greedy):
    client = openai.AsyncOpenAI(base_url=lora_server.url + "/v1", api_key="unused")
    for model, lora in (("qv", "qv"), ("all-rslora", "all-rslora"), ("primary", None)):
        completion = await client.completions.create(model=model, prompt=PROMPT, max_tokens=20,
                                                     temperature=0)
        assert completion.choices[0].text == peft_greedy(PROMPT, 20, lora)
        assert completion.model == model
    chunks = await client.completions.create(model="qv", prompt=PROMPT, max_tokens=20,
                                             temperature=0, stream=True)
    assert "".join([c.choices[0].text async for c in chunks]) == peft_greedy(PROMPT, 20, "qv")
    assert peft_greedy(PROMPT, 20, "qv") != peft_greedy(PROMPT, 20)


@pytest.mark.parametrize("path, body", [
    ("/v1/completions", {"prompt": PROMPT}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPT}]}),
])
async def test_a_model_that_is_neither_a_group_nor_an_adapter_is_a_404_naming_it(
        lora_server, http, path, body):
    async with http.post(lora_server.url + path, json={**body, "model": "support-tone"}) as answer:
        error = await answer.json()
    assert_api_error(answer.status, error, 404, "model")
    assert "'support-tone'" in error["error"]["message"]
