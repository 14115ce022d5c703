"""Every malformed request is a 4xx JSON error in the contract's shape, and the server goes on."""
from __future__ import annotations

import json

import pytest

from tests.server.helpers import assert_api_error

GOOD = {"text": "hello there"}


def gen(**fields) -> dict:
    return {**GOOD, **fields}


# (path, raw body or JSON body, status, param) -- param None: the body as a whole is wrong.
CASES = [
    ("/generate", b"{not json", 400, None),
    ("/generate", b"", 400, None),
    ("/generate", b"[1, 2]", 400, None),
    ("/generate", b'"text"', 400, None),
    ("/generate", b"\xff\xfe", 400, None),
    ("/generate", b"[" * 50_000 + b"]" * 50_000, 400, None),
    ("/generate", {}, 400, "text"),
    ("/generate", {"text": None}, 400, "text"),
    ("/generate", {"text": 5}, 400, "text"),
    ("/generate", {"text": ""}, 400, "text"),
    ("/generate", {"text": "   "}, 400, "text"),
    ("/generate", {"text": []}, 400, "text"),
    ("/generate", {"text": ["ok", 3]}, 400, "text"),
    ("/generate", {"text": ["ok", ""]}, 400, "text"),
    ("/generate", gen(max_new_tokens=-1), 400, "max_new_tokens"),
    ("/generate", gen(max_new_tokens=0), 400, "max_new_tokens"),
    ("/generate", gen(max_new_tokens="5"), 400, "max_new_tokens"),
    ("/generate", gen(max_new_tokens=5.5), 400, "max_new_tokens"),
    ("/generate", gen(max_new_tokens=True), 400, "max_new_tokens"),
    ("/generate", gen(max_new_tokens=100_000), 400, "max_new_tokens"),
    ("/generate", gen(max_new_tokens=10**30), 400, "max_new_tokens"),
    ("/generate", gen(min_new_tokens=-1), 400, "min_new_tokens"),
    ("/generate", gen(max_new_tokens=4, min_new_tokens=5), 400, "min_new_tokens"),
    ("/generate", gen(sampling_temperature=-0.5), 400, "sampling_temperature"),
    ("/generate", gen(sampling_temperature="hot"), 400, "sampling_temperature"),
    ("/generate", gen(sampling_temperature=False), 400, "sampling_temperature"),
    ("/generate", b'{"text": "a", "sampling_temperature": NaN}', 400, "sampling_temperature"),
    ("/generate", b'{"text": "a", "sampling_topp": Infinity}', 400, "sampling_topp"),
    ("/generate", gen(sampling_topp=0), 400, "sampling_topp"),
    ("/generate", gen(sampling_topp=1.5), 400, "sampling_topp"),
    ("/generate", gen(sampling_topk=-1), 400, "sampling_topk"),
    ("/generate", gen(sampling_topk=2.5), 400, "sampling_topk"),
    ("/generate", gen(repetition_penalty=0), 400, "repetition_penalty"),
    ("/generate", gen(no_repeat_ngram_size=-2), 400, "no_repeat_ngram_size"),
    ("/generate", gen(seed=-1), 400, "seed"),
    ("/generate", gen(seed=2**64), 400, "seed"),
    ("/generate", gen(seed="7"), 400, "seed"),
    ("/generate", gen(stop=5), 400, "stop"),
    ("/generate", gen(stop=""), 400, "stop"),
    ("/generate", gen(stop=["ok", ""]), 400, "stop"),
    ("/generate", gen(stop=[1]), 400, "stop"),
    ("/generate", gen(stop=["s"] * 100), 400, "stop"),
    ("/generate", gen(prompt_max_tokens=0), 400, "prompt_max_tokens"),
    ("/generate", gen(prompt_max_tokens="10"), 400, "prompt_max_tokens"),
    ("/generate", gen(return_metadata="yes"), 400, "return_metadata"),
    ("/generate", gen(consumer_group=5), 400, "consumer_group"),
    ("/generate", gen(consumer_group="nope"), 404, "consumer_group"),
    ("/generate", gen(consumer_group="classifier"), 400, "consumer_group"),
    ("/generate", {"text": ["x"] * 1000}, 413, "text"),
    ("/generate_stream", {"text": ["a", "b"]}, 400, "text"),
    ("/generate_stream", gen(max_new_tokens=-3), 400, "max_new_tokens"),
    ("/generate_stream", gen(consumer_group="nope"), 404, "consumer_group"),
    ("/generate_stream", {"text": "word " * 2000}, 413, "text"),
    ("/classify", {}, 400, "text"),
    ("/classify", {"text": 5}, 400, "text"),
    ("/classify", {"text": []}, 400, "text"),
    ("/classify", {"text": [["only one"]]}, 400, "text"),
    ("/classify", {"text": [["a", "b", "c"]]}, 400, "text"),
    ("/classify", {"text": [[1, 2]]}, 400, "text"),
    ("/classify", {"text": "word " * 500}, 413, "text"),
    ("/classify", {"text": "ok", "consumer_group": "primary"}, 400, "consumer_group"),
    ("/classify", {"text": "ok", "consumer_group": "nope"}, 404, "consumer_group"),
    ("/tokenize", {}, 400, "text"),
    ("/tokenize", {"text": ["a"]}, 400, "text"),
    ("/tokenize", {"text": "a", "consumer_group": "nope"}, 404, "consumer_group"),
]


async def still_serves(http, url) -> None:
    async with http.post(url + "/generate", json={"text": "next", "max_new_tokens": 2}) as reply:
        assert reply.status == 200
        assert isinstance((await reply.json())["text"], str)


@pytest.mark.parametrize("path,body,status,param", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
async def test_bad_request_is_a_json_4xx(server_url, http, path, body, status, param):
    if isinstance(body, bytes):
        request = http.post(server_url + path, data=body,
                            headers={"Content-Type": "application/json"})
    else:
        request = http.post(server_url + path, json=body)
    async with request as response:
        assert response.headers["content-type"].startswith("application/json")
        assert_api_error(response.status, await response.json(), status, param)
    await still_serves(http, server_url)


async def test_body_over_the_limit_is_413(server_factory, http):
    url = server_factory(max_body_bytes=1000)
    big = json.dumps({"text": "a" * 2000}).encode()
    async with http.post(url + "/generate", data=big) as response:
        assert_api_error(response.status, await response.json(), 413)

    async def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(10):
            yield b" " * 500

    async with http.post(url + "/generate", data=chunks()) as response:
        assert_api_error(response.status, await response.json(), 413)
    await still_serves(http, url)


async def test_unknown_path_and_wrong_method(server_url, http):
    async with http.get(server_url + "/no/such/thing") as response:
        assert_api_error(response.status, await response.json(), 404, None)
    async with http.get(server_url + "/generate") as response:
        assert_api_error(response.status, await response.json(), 405, None)
        assert "POST" in response.headers["Allow"]
    async with http.post(server_url + "/health") as response:
        assert response.status == 405
    await still_serves(http, server_url)
