"""The OpenAI-compatible API, exercised with the official `openai` package against a real server."""
from __future__ import annotations

import asyncio
import json
import urllib.request

import aiohttp
import openai
import pytest

from takeoff.config import ServerConfig
from takeoff.feedback.task import rewrite_prompt
from tests.clients.slow_runner import metric, slow_runner
from tests.runners import failing_runner, generator_runner

PROMPT = "The onboarding guide is confusing."


@pytest.fixture(scope="module")
def client(server_url):
    with openai.OpenAI(base_url=server_url + "/v1", api_key="unused", max_retries=0,
                       timeout=60) as client:
        yield client


def complete(client, prompt=PROMPT, **kwargs):
    return client.completions.create(model="primary", prompt=prompt, temperature=0, **kwargs)


def complete_streamed(client, prompt=PROMPT, **kwargs) -> tuple[str, list]:
    chunks = list(client.completions.create(model="primary", prompt=prompt, temperature=0,
                                            stream=True, **kwargs))
    return "".join(c.choices[0].text for c in chunks if c.choices), chunks


def chat(client, messages, **kwargs):
    return client.chat.completions.create(model="primary", messages=messages, temperature=0,
                                          **kwargs)


def chat_streamed(client, messages, **kwargs) -> tuple[str, list]:
    chunks = list(client.chat.completions.create(model="primary", messages=messages,
                                                 temperature=0, stream=True, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_models_lists_the_consumer_groups(client):
    models = client.models.list()
    assert sorted(m.id for m in models.data) == ["classifier", "primary"]
    assert all(m.object == "model" for m in models.data)


def test_completion_streamed_and_not_agree_token_for_token(client, server_url):
    whole = complete(client, max_tokens=12)
    streamed, chunks = complete_streamed(client, max_tokens=12)
    assert whole.choices[0].text == streamed
    assert whole.choices[0].finish_reason == chunks[-1].choices[0].finish_reason
    assert len([c for c in chunks if c.choices[0].text]) > 1  # it really came in pieces
    # The same engine answers the Takeoff API: greedy decoding gives the same text.
    takeoff = _post(server_url, "/generate", {"text": PROMPT, "max_new_tokens": 12})
    assert takeoff["text"] == streamed


def test_completion_usage_counts_tokens(client, server_url):
    answer = complete(client, max_tokens=7)
    prompt_ids = _post(server_url, "/tokenize", {"text": PROMPT})["result"]["ids"]
    usage = answer.usage
    assert usage.prompt_tokens == len(prompt_ids)
    assert usage.completion_tokens == 7 if answer.choices[0].finish_reason == "length" \
        else usage.completion_tokens <= 7
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streamed_usage_matches_the_whole_answer(client):
    whole = complete(client, max_tokens=9)
    _, chunks = complete_streamed(client, max_tokens=9, stream_options={"include_usage": True})
    assert chunks[-1].choices == []
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump()


def test_length_finish_reason(client):
    answer = complete(client, max_tokens=3)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == 3


@pytest.mark.parametrize("as_list", [False, True])
def test_stop_sequence_cuts_the_text_and_finishes_with_stop(client, as_list):
    full = complete(client, max_tokens=40).choices[0].text
    stop = _stop_inside(full)
    expected = full[:full.index(stop)]
    stops = [stop, "never-generated-zzz"] if as_list else stop
    whole = complete(client, max_tokens=40, stop=stops)
    streamed, chunks = complete_streamed(client, max_tokens=40, stop=stops)
    assert whole.choices[0].text == streamed == expected
    assert whole.choices[0].finish_reason == chunks[-1].choices[0].finish_reason == "stop"


def test_chat_streamed_and_not_agree(client):
    messages = [{"role": "system", "content": "A manager reviews a sprint demo"},
                {"role": "user", "content": "Why is this still broken?"}]
    whole = chat(client, messages, max_tokens=12)
    streamed, chunks = chat_streamed(client, messages, max_tokens=12)
    assert whole.choices[0].message.role == "assistant"
    assert whole.choices[0].message.content == streamed
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert whole.object == "chat.completion" and chunks[0].object == "chat.completion.chunk"


def test_chat_template_system_is_context_last_user_is_feedback(client):
    context, feedback = "A manager reviews a sprint demo", "Why is this still broken?"
    messages = [{"role": "system", "content": context},
                {"role": "user", "content": "an earlier message"},
                {"role": "assistant", "content": "an earlier answer"},
                {"role": "user", "content": feedback}]
    answer = chat(client, messages, max_tokens=10)
    expected_prompt = rewrite_prompt(context, feedback)
    assert answer.choices[0].message.content == \
        complete(client, prompt=expected_prompt, max_tokens=10).choices[0].text
    assert answer.usage.prompt_tokens == \
        complete(client, prompt=expected_prompt, max_tokens=10).usage.prompt_tokens


def test_chat_without_system_message_sends_the_user_text_as_is(client):
    answer = chat(client, [{"role": "user", "content": PROMPT}], max_tokens=10)
    assert answer.choices[0].message.content == complete(client, max_tokens=10).choices[0].text


def test_chat_content_as_text_parts(client):
    parts = [{"type": "text", "text": "The onboarding guide "}, {"type": "text",
                                                                "text": "is confusing."}]
    answer = chat(client, [{"role": "user", "content": parts}], max_tokens=6)
    assert answer.choices[0].message.content == complete(client, max_tokens=6).choices[0].text


def test_same_seed_same_sampled_text(client):
    def sample(seed):
        return client.completions.create(model="primary", prompt=PROMPT, max_tokens=16,
                                         temperature=1.0, seed=seed).choices[0].text

    assert sample(7) == sample(7)


@pytest.mark.parametrize("kwargs, param", [
    (dict(n=2), "n"),
    (dict(temperature=-1), "temperature"),
    (dict(max_tokens=0), "max_tokens"),
    (dict(max_tokens=100_000), "max_tokens"),
    (dict(top_p=0), "top_p"),
    (dict(stop=[""]), "stop"),
    (dict(logprobs=2), "logprobs"),
    # found by the schemathesis run: either overflowed the logits to inf, and sampling failed (500)
    (dict(extra_body={"repetition_penalty": 1.2245493632164874e-185}), "repetition_penalty"),
    (dict(temperature=1e-200), "temperature"),
])
def test_bad_completion_request_raises_bad_request(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="primary", prompt=PROMPT, **kwargs)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == param
    assert caught.value.body["message"]


@pytest.mark.parametrize("messages", [[], [{"role": "wizard", "content": "hi"}],
                                      [{"role": "system", "content": "only a system message"}],
                                      [{"role": "user", "content": [{"type": "image_url"}]}]])
def test_bad_chat_messages_raise_bad_request(client, messages):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="primary", messages=messages)
    assert caught.value.body["param"] == "messages"


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="no-such-group", prompt=PROMPT)
    assert "no-such-group" in caught.value.body["message"]
    assert caught.value.body["param"] == "model"


def test_classifier_model_cannot_complete(client):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="classifier", prompt=PROMPT)


async def test_error_body_has_the_contract_shape(server_url):
    async with aiohttp.ClientSession() as session:
        async with session.post(server_url + "/v1/chat/completions",
                                json={"model": "primary", "messages": "hi"}) as response:
            assert response.status == 400
            body = await response.json()
        async with session.post(server_url + "/v1/completions", data=b"{not json") as response:
            assert response.status == 400
    assert set(body["error"]) >= {"message", "type", "param"}
    assert body["error"]["param"] == "messages"


async def test_disconnecting_from_a_stream_aborts_and_frees_the_slot(server_factory):
    url = server_factory(runner_factory=slow_runner)
    async with aiohttp.ClientSession() as session, \
            openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        aborted = await metric(session, url, "takeoff_finished_requests_total", 'reason="aborted"')
        stream = await client.chat.completions.create(
            model="primary", messages=[{"role": "user", "content": PROMPT}], max_tokens=200,
            stream=True, extra_body={"min_tokens": 200})
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                break
        assert await metric(session, url, "takeoff_kv_slots_in_use") == 1
        await stream.close()
        for _ in range(100):
            if await metric(session, url, "takeoff_kv_slots_in_use") == 0:
                break
            await asyncio.sleep(0.05)
        assert await metric(session, url, "takeoff_kv_slots_in_use") == 0
        assert await metric(session, url, "takeoff_finished_requests_total",
                            'reason="aborted"') == aborted + 1


def _stop_inside(text: str) -> str:
    """A short piece from the middle of `text`, not whitespace only."""
    for start in range(len(text) // 3, len(text) - 2):
        piece = text[start:start + 2]
        if piece.strip() and piece.isprintable():
            return piece
    pytest.fail(f"no usable stop sequence in {text!r}")


def _post(server_url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(server_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)



def test_transcript_chat_template(server_factory):
    url = server_factory(chat_template="transcript")
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello"}]
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        answer = chat(client, messages, max_tokens=8)
        expected = complete(client, prompt="System: Be brief.\nUser: hello", max_tokens=8)
    assert answer.choices[0].message.content == expected.choices[0].text
    assert answer.usage.prompt_tokens == expected.usage.prompt_tokens


def test_unknown_chat_template_is_refused_at_startup():
    with pytest.raises(ValueError, match="--chat-template must be one of feedback, transcript"):
        ServerConfig(model="any", chat_template="llama")


def test_api_key_is_the_openai_api_key(server_factory):
    url = server_factory(api_key="s3cret")
    with openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
    with openai.OpenAI(base_url=url + "/v1", api_key="s3cret", max_retries=0) as right:
        assert complete(right, max_tokens=2).usage.completion_tokens <= 2


def test_several_prompts_streamed_and_not(client):
    prompts = [PROMPT, "Thanks for the clear sprint demo", "hello"]
    whole = client.completions.create(model="primary", prompt=prompts, temperature=0,
                                      max_tokens=10)
    alone = [complete(client, prompt=p, max_tokens=10).choices[0].text for p in prompts]
    assert [c.text for c in sorted(whole.choices, key=lambda c: c.index)] == alone
    streamed = {i: "" for i in range(len(prompts))}
    finished = set()
    for chunk in client.completions.create(model="primary", prompt=prompts, temperature=0,
                                           max_tokens=10, stream=True):
        for choice in chunk.choices:
            assert choice.index not in finished
            streamed[choice.index] += choice.text
            if choice.finish_reason:
                finished.add(choice.index)
    assert [streamed[i] for i in range(len(prompts))] == alone
    assert finished == {0, 1, 2}


def test_failure_mid_stream_raises_in_the_openai_client(server_factory):
    server = server_factory.server(runner_factory=failing_runner)
    url, runner = server.url, generator_runner(server.engine)
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        stream = client.chat.completions.create(
            model="primary", messages=[{"role": "user", "content": PROMPT}], max_tokens=200,
            stream=True, extra_body={"min_tokens": 200})
        with pytest.raises(openai.APIError, match="simulated device failure"):
            for number, chunk in enumerate(stream):
                if number == 2:  # the answer has started: the next step fails
                    runner.broken.set()
        runner.broken.clear()
        # The server goes on.
        assert complete(client, max_tokens=2).usage.completion_tokens <= 2


@pytest.fixture(scope="module")
def embed_server(server_factory, tmp_path_factory):
    from tests.tiny_models import save_tiny_sentence_encoder

    encoder = save_tiny_sentence_encoder(tmp_path_factory.mktemp("encoder") / "encoder")
    return server_factory.server(embedder=str(encoder))


async def post(url: str, path: str, body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url + path, json=body) as response:
            return response.status, await response.json()


async def test_embedding_dimensions_are_checked_before_anything_runs(embed_server):
    dimensions = embed_server.engine.reader_set.groups()["embed"].dimensions
    submitted = []
    submit = embed_server.engine.submit
    embed_server.engine.submit = lambda *args, **kw: submitted.append(args) or submit(*args, **kw)
    try:
        status, wrong = await post(embed_server.url, "/v1/embeddings",
                                   {"model": "embed", "input": ["hi"], "dimensions": dimensions + 1})
        assert submitted == []  # refused before the embedding ran
        _, right = await post(embed_server.url, "/v1/embeddings",
                              {"model": "embed", "input": ["hi"], "dimensions": dimensions})
    finally:
        del embed_server.engine.submit
    assert status == 400 and wrong["error"]["param"] == "dimensions"
    assert f"have {dimensions}" in wrong["error"]["message"]
    assert len(right["data"][0]["embedding"]) == dimensions and len(submitted) == 1


@pytest.mark.parametrize("path, body, param", [
    ("/generate", {"text": PROMPT, "regex_string": "(unclosed"}, "regex_string"),
    ("/generate", {"text": PROMPT, "json_schema": {"type": "frobnicate"}}, "json_schema"),
    ("/v1/completions", {"prompt": PROMPT, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "frobnicate"}}}},
     "response_format"),
])
async def test_a_pattern_that_cannot_compile_is_a_400_naming_its_field(server_url, path, body,
                                                                      param):
    status, answer = await post(server_url, path, body)
    assert status == 400 and answer["error"]["param"] == param, answer
    assert "cannot be compiled" in answer["error"]["message"]
