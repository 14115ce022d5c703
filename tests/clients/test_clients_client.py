"""The Python client against a real server with tiny models."""
from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from clients.client import Client, TakeoffClient
from clients.errors import (AuthenticationError, BadRequestError, NotFoundError, OverloadedError,
                            RequestTimeoutError, RequestTooLargeError, ServerError,
                            UnreachableError)
from tests.clients.slow_runner import metric, slow_runner
from tests.runners import failing_runner, generator_runner

PROMPT = "Your report was late again."


async def test_generate_equals_generate_stream_joined(server_url):
    async with TakeoffClient(server_url) as client:
        whole = await client.generate(PROMPT, max_new_tokens=20, return_metadata=True)
        stream = client.generate_stream(PROMPT, max_new_tokens=20)
        pieces = [piece async for piece in stream]
    assert len(pieces) > 1
    assert "".join(pieces) == whole["text"]
    assert stream.metadata == whole["metadata"]


async def test_generate_a_list_keeps_the_order(server_url):
    async with TakeoffClient(server_url) as client:
        texts = ["first text", "a second, longer text to generate from", PROMPT]
        together = await client.generate(texts, max_new_tokens=8)
        alone = [(await client.generate(t, max_new_tokens=8))["text"] for t in texts]
    assert together["text"] == alone


async def test_sampling_fields_reach_the_server(server_url):
    async with TakeoffClient(server_url) as client:
        first = await client.generate(PROMPT, max_new_tokens=16, sampling_topk=0,
                                      sampling_temperature=1.0, seed=3)
        again = await client.generate(PROMPT, max_new_tokens=16, sampling_topk=0,
                                      sampling_temperature=1.0, seed=3)
        short = await client.generate(PROMPT, max_new_tokens=2, return_metadata=True)
    assert first == again
    assert short["metadata"]["generated_tokens"] <= 2


async def test_beam_fields_reach_the_server(server_url):
    async with TakeoffClient(server_url) as client:
        beams = await client.generate(PROMPT, max_new_tokens=10, num_beams=3,
                                      num_return_sequences=2, return_metadata=True)
        stream = client.generate_stream(PROMPT, max_new_tokens=10, num_beams=3)
        pieces = [piece async for piece in stream]
    assert len(beams["text"]) == 2 and pieces == beams["text"][:1]
    assert stream.metadata == beams["metadata"][0]
    assert beams["metadata"][0]["score"] >= beams["metadata"][1]["score"]


async def test_classify_tokenize_reader_groups_health(server_url):
    async with TakeoffClient(server_url) as client:
        classified = await client.classify(["You never listen.", "Thanks for the demo!"])
        tokens = await client.tokenize(PROMPT)
        groups = await client.reader_groups()
        health = await client.health()
    assert len(classified["result"]) == 2 and len(classified["labels"]) > 1
    assert all(abs(sum(row) - 1) < 1e-4 for row in classified["result"])
    assert len(tokens["tokens"]) == len(tokens["ids"]) > 1
    assert set(groups) == {"primary", "classifier"}
    assert health["status"] == "ok"


async def test_one_session_is_reused(server_url):
    async with TakeoffClient(server_url) as client:
        await client.health()
        session = client._session
        await client.generate(PROMPT, max_new_tokens=2)
        async for _ in client.generate_stream(PROMPT, max_new_tokens=2):
            pass
        assert client._session is session
    assert session.closed


async def test_bad_request_carries_the_server_message(server_url):
    async with TakeoffClient(server_url) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.generate(PROMPT, max_new_tokens=0)
        with pytest.raises(BadRequestError) as in_stream:
            async for _ in client.generate_stream(PROMPT, sampling_topp=5.0):
                pass
    assert caught.value.status == 400 and caught.value.param == "max_new_tokens"
    assert "max_new_tokens" in caught.value.message
    assert in_stream.value.param == "sampling_topp"


async def test_input_over_the_limit_is_too_large(server_url):
    async with TakeoffClient(server_url) as client:
        with pytest.raises(RequestTooLargeError) as caught:
            await client.generate("word " * 2000)
        truncated = await client.generate("word " * 2000, prompt_max_tokens=16,
                                          max_new_tokens=2, return_metadata=True)
    assert caught.value.status == 413 and "prompt_max_tokens" in caught.value.message
    assert truncated["metadata"]["input_tokens"] == 16


async def test_unknown_group_is_not_found(server_url):
    async with TakeoffClient(server_url) as client:
        with pytest.raises(NotFoundError) as caught:
            await client.generate(PROMPT, consumer_group="nope")
    assert caught.value.status == 404 and "nope" in caught.value.message


async def test_api_key(server_factory):
    url = server_factory(api_key="s3cret")
    async with TakeoffClient(url) as anonymous, TakeoffClient(url, api_key="wrong") as wrong, \
            TakeoffClient(url, api_key="s3cret") as right:
        assert (await anonymous.health())["status"] == "ok"  # /health needs no key
        for client in (anonymous, wrong):
            with pytest.raises(AuthenticationError) as caught:
                await client.generate(PROMPT, max_new_tokens=2)
            assert caught.value.status == 401
            with pytest.raises(AuthenticationError):
                async for _ in client.generate_stream(PROMPT, max_new_tokens=2):
                    pass
        assert (await right.generate(PROMPT, max_new_tokens=2))["text"] is not None


async def test_full_queue_is_overloaded_with_retry_after(server_factory):
    url = server_factory(max_num_seqs=1, max_queue=1, runner_factory=slow_runner)
    async with TakeoffClient(url) as client, aiohttp.ClientSession() as session:
        running = client.generate_stream(PROMPT, max_new_tokens=200, min_new_tokens=200)
        await running.__anext__()  # holds the only slot
        waiting = asyncio.create_task(client.generate(PROMPT, max_new_tokens=2))
        while await metric(session, url, "takeoff_queue_length") < 1:
            await asyncio.sleep(0.02)
        with pytest.raises(OverloadedError) as caught:
            await client.generate(PROMPT, max_new_tokens=2)
        assert caught.value.status == 429 and caught.value.retry_after == 1
        assert "busy" in caught.value.message
        await running.aclose()  # frees the slot: the waiting request runs now
        assert (await waiting)["text"] is not None


async def test_closing_a_stream_frees_its_slot(server_factory):
    url = server_factory(runner_factory=slow_runner)
    async with TakeoffClient(url) as client, aiohttp.ClientSession() as session:
        async with client.generate_stream(PROMPT, max_new_tokens=200,
                                          min_new_tokens=200) as stream:
            await stream.__anext__()
            assert await metric(session, url, "takeoff_kv_slots_in_use") == 1
        for _ in range(100):
            if await metric(session, url, "takeoff_kv_slots_in_use") == 0:
                break
            await asyncio.sleep(0.05)
        assert await metric(session, url, "takeoff_kv_slots_in_use") == 0


async def test_unreachable_server():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with TakeoffClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(UnreachableError) as caught:
            await client.generate(PROMPT)
        with pytest.raises(ConnectionError):  # also a builtin ConnectionError
            async for _ in client.generate_stream(PROMPT):
                pass
    assert f"127.0.0.1:{port}" in caught.value.message


async def test_timeout_when_the_server_does_not_answer():
    done = asyncio.Event()

    async def never_answer(reader, writer):
        await done.wait()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with TakeoffClient(f"http://127.0.0.1:{port}", timeout=0.3) as client:
            with pytest.raises(RequestTimeoutError):
                await client.generate(PROMPT)
            with pytest.raises(TimeoutError):  # also a builtin TimeoutError
                async for _ in client.generate_stream(PROMPT):
                    pass
    finally:
        done.set()
        server.close()
        await server.wait_closed()


def test_sync_client(server_url):
    with Client(server_url) as client:
        whole = client.generate(PROMPT, max_new_tokens=12, return_metadata=True)
        stream = client.generate_stream(PROMPT, max_new_tokens=12)
        assert "".join(stream) == whole["text"]
        assert stream.metadata == whole["metadata"]
        assert client.tokenize(PROMPT)["ids"]
        assert "primary" in client.reader_groups()
        assert len(client.classify("Thanks!")["result"]) == 1
        with pytest.raises(BadRequestError):
            client.classify("hello", consumer_group="primary")



async def test_error_event_mid_stream_raises_server_error(server_factory):
    server = server_factory.server(runner_factory=failing_runner)
    url, runner = server.url, generator_runner(server.engine)
    async with TakeoffClient(url) as client:
        pieces = []
        with pytest.raises(ServerError) as caught:
            async for piece in client.generate_stream(PROMPT, max_new_tokens=200,
                                                      min_new_tokens=200):
                pieces.append(piece)
                if len(pieces) == 2:  # the answer has started: the next step fails
                    runner.broken.set()
        runner.broken.clear()
        assert "simulated device failure" in caught.value.message
        assert (await client.generate(PROMPT, max_new_tokens=2))["text"] is not None
