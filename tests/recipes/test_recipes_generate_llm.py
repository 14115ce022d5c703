"""The LLM path against a fake OpenAI-compatible endpoint that answers badly first."""
from __future__ import annotations

import argparse
import collections
import json

import pytest
from aiohttp import web

from recipes import generate_llm
from takeoff.feedback.task import LABELS


def fake_reply(prompt: str, attempt: int) -> str:
    if "Threat" in prompt:
        return "I'd rather not write those."            # never valid: skipped after the retries
    if attempt == 0:
        return '```json\n["unterminated", \n```'         # malformed first time round
    if "pairs set at" in prompt:
        workplace = prompt.split("pairs set at ")[1].split(".")[0]
        return json.dumps([{"Context": f"You lead a team at {workplace}.", "Negative Feedback": f"The rota at {workplace} is a mess.",
                            "Constructive Feedback": f"The rota at {workplace} is close; could you add cover?"},
                           {"context": "missing fields"}])
    label = next(l for l in LABELS if f"'{l}'" in prompt)
    return "Here you go:\n" + json.dumps([f"{label} one.", f"{label} two.", f"{label} ONE!"])


@pytest.fixture
async def endpoint():
    attempts = collections.Counter()

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        prompt = body["messages"][0]["content"]
        reply = fake_reply(prompt, attempts[prompt])
        attempts[prompt] += 1
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": reply}}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1", attempts
    await runner.cleanup()


def arguments(base_url: str, **overrides) -> argparse.Namespace:
    options = dict(base_url=base_url, api_key="k", model="m", num_per_request=3, num_requests_per_label=1,
                   num_pairs_per_request=2, num_pair_requests=5, validation_fraction=0.2, temperature=1.0,
                   max_tokens=100, max_retries=1, concurrency=4, timeout=10.0, seed=0)
    options.update(overrides)
    return argparse.Namespace(**options)


async def test_malformed_json_is_retried_then_skipped(endpoint):
    base_url, attempts = endpoint
    result = await generate_llm.generate(arguments(base_url))
    assert result["num_skipped"] == 1                                # the Threat request, after 1 retry
    assert max(attempts.values()) == 2
    train, validation = result["classification"]
    labels = {r["label"] for r in train + validation}
    assert labels == set(LABELS) - {"Threat"}
    # "X one." and "X ONE!" are the same sentence; each label keeps two.
    assert collections.Counter(r["label"] for r in train + validation) == {l: 2 for l in labels}


async def test_pairs_split_by_workplace_and_bad_items_dropped(endpoint):
    base_url, _ = endpoint
    result = await generate_llm.generate(arguments(base_url))
    train, validation = result["rewrite"]
    assert len(train) + len(validation) == 5                          # one valid pair per request
    assert not {r["workplace"] for r in train} & {r["workplace"] for r in validation}
    assert all(r["context"] and r["negative"] and r["constructive"] for r in train + validation)
    assert sum(count for _, count in result["contexts"]) == 5


def test_parse_json_list_finds_the_list_in_chatter():
    assert generate_llm.parse_json_list('Sure!\n```json\n["a", "b"]\n```') == ["a", "b"]
    with pytest.raises(ValueError):
        generate_llm.parse_json_list('{"a": 1}')
