"""Continuous batching, disconnects, queue bound and step failures, observed from outside."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from clients.sse import SSEDecoder
from tests.runners import failing_runner, generator_runner
from tests.server.helpers import assert_api_error, metric, next_event, read_events, wait_for_metric

LONG = {"max_new_tokens": 250, "min_new_tokens": 250}  # EOS suppressed: exactly 250 steps


async def timed_events(http, url, body) -> list[tuple[float, str]]:
    """(arrival time, event name) of each event of one stream."""
    arrivals = []
    async with http.post(url + "/generate_stream", json=body) as response:
        assert response.status == 200
        decoder = SSEDecoder()
        async for chunk in response.content.iter_any():
            arrivals += [(time.monotonic(), e.event) for e in decoder.feed(chunk)]
    return arrivals


async def test_second_stream_starts_before_the_first_finishes(server_url, http):
    first = asyncio.create_task(timed_events(http, server_url, {"text": "first", **LONG}))
    while await metric(http, server_url, "takeoff_kv_slots_in_use") < 1:
        await asyncio.sleep(0.01)
    second = await timed_events(http, server_url,
                                {"text": "second", "max_new_tokens": 5, "min_new_tokens": 5})
    first_events = await first
    first_done = next(t for t, name in first_events if name == "metadata")
    assert second[-1][1] == "metadata"
    assert second[0][0] < first_done  # the second stream's first token came mid-way
    assert second[-1][0] < first_done  # ...and it finished while the first kept going


async def test_disconnect_frees_the_slot(server_factory, http):
    url = server_factory(max_num_seqs=2)
    aborted_before = await metric(http, url, "takeoff_finished_requests_total",
                                  'reason="aborted"')
    response = await http.post(url + "/generate_stream", json={"text": "going away", **LONG})
    decoder, pending = SSEDecoder(), []
    await next_event(response, decoder, pending)
    assert await metric(http, url, "takeoff_kv_slots_in_use") == 1
    response.close()  # the client goes away mid-stream
    assert await wait_for_metric(http, url, "takeoff_kv_slots_in_use", 0) == 0
    assert await metric(http, url, "takeoff_finished_requests_total",
                        'reason="aborted"') == aborted_before + 1
    async with http.post(url + "/generate", json={"text": "still here", "max_new_tokens": 3,
                                                  "min_new_tokens": 3}) as reply:
        assert reply.status == 200


async def test_full_queue_is_429_with_retry_after(server_factory, http):
    url = server_factory(max_num_seqs=1, max_queue=1)
    running = await http.post(url + "/generate_stream", json={"text": "runs", **LONG})
    await next_event(running, SSEDecoder(), [])
    waiting = await http.post(url + "/generate_stream", json={"text": "waits", **LONG})
    assert waiting.status == 200
    assert await wait_for_metric(http, url, "takeoff_queue_length", 1) == 1
    async with http.post(url + "/generate", json={"text": "refused"}) as refused:
        assert_api_error(refused.status, await refused.json(), 429)
        assert int(refused.headers["Retry-After"]) >= 1
    # Each reader has its own queue: the classifier still takes work.
    async with http.post(url + "/classify", json={"text": "not refused"}) as classified:
        assert classified.status == 200
    running.close()
    waiting.close()
    assert await wait_for_metric(http, url, "takeoff_kv_slots_in_use", 0) == 0
    assert await wait_for_metric(http, url, "takeoff_queue_length", 0) == 0
    async with http.post(url + "/generate", json={"text": "served", "max_new_tokens": 2}) as ok:
        assert ok.status == 200


async def test_failed_step_is_an_error_event_and_the_server_goes_on(server_factory, http):
    server = server_factory.server(runner_factory=failing_runner)
    url, runner = server.url, generator_runner(server.engine)
    async with http.post(url + "/generate_stream", json={"text": "doomed", **LONG}) as response:
        decoder, pending = SSEDecoder(), []
        first = await next_event(response, decoder, pending)
        assert first.event == "message"
        runner.broken.set()
        rest = pending + decoder.feed(await response.content.read()) + decoder.close()
        runner.broken.clear()
    assert rest[-1].event == "error"
    assert_api_error(500, json.loads(rest[-1].data), 500)
    assert "simulated device failure" in json.loads(rest[-1].data)["error"]["message"]
    assert await wait_for_metric(http, url, "takeoff_kv_slots_in_use", 0) == 0
    async with http.post(url + "/generate", json={"text": "next", "max_new_tokens": 3}) as reply:
        assert reply.status == 200
    events = await read_events(await http.post(url + "/generate_stream",
                                               json={"text": "next", "max_new_tokens": 3}))
    assert events[-1].event == "metadata"


async def test_classification_is_answered_while_streams_decode(server_url, http):
    async with http.post(server_url + "/generate_stream", json={"text": "busy", **LONG}) as stream:
        decoder, pending = SSEDecoder(), []
        await next_event(stream, decoder, pending)
        for _ in range(3):
            async with http.post(server_url + "/classify", json={"text": ["ok", "fine"]}) as reply:
                assert reply.status == 200
                assert len((await reply.json())["result"]) == 2
        assert await metric(http, server_url, "takeoff_kv_slots_in_use") == 1  # still decoding
        rest = pending + decoder.feed(await stream.content.read()) + decoder.close()
    assert json.loads(rest[-1].data)["generated_tokens"] == 250


async def test_a_client_leaving_generate_frees_its_slots(server_factory, http):
    url = server_factory(max_num_seqs=2)
    body = {"text": ["left behind", "me too"], **LONG}
    request = asyncio.create_task(http.post(url + "/generate", json=body))
    assert await wait_for_metric(http, url, "takeoff_kv_slots_in_use", 2) == 2
    request.cancel()  # the client gives up and closes its connection
    await asyncio.gather(request, return_exceptions=True)
    assert await wait_for_metric(http, url, "takeoff_kv_slots_in_use", 0) == 0
    assert await metric(http, url, "takeoff_requests_total",
                        'endpoint="/generate",status="499"') == 1


async def test_a_request_waiting_past_the_queue_timeout_is_503(server_factory, http):
    url = server_factory(max_num_seqs=1, queue_timeout=0.3, max_new_tokens=5000)
    hold = {"text": "holds the slot", "max_new_tokens": 5000, "min_new_tokens": 5000}
    async with http.post(url + "/generate_stream", json=hold) as busy:  # closed when done
        await next_event(busy, SSEDecoder(), [])
        async with http.post(url + "/generate", json={"text": "waits"}) as late:
            assert_api_error(late.status, await late.json(), 503)
            assert "queue" in (await late.json())["error"]["message"]
        async with http.post(url + "/generate_stream", json={"text": "waits too"}) as stream:
            events = await read_events(stream)
        assert [e.event for e in events] == ["error"]
        assert json.loads(events[0].data)["error"]["type"] == "timeout_error"
