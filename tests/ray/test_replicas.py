"""Two replicas on a local Ray cluster serve the whole API through one port, as one server does.

The last two tests kill a replica and then the server itself: keep them last.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket

import aiohttp
import openai
import pytest

from clients.sse import SSEDecoder

pytest.importorskip("ray", reason="the [ray] extra is not installed")
from benchmarks.serving_replicas import descendants, replica_ids, wait_for_replicas
from tests.ray.conftest import is_running
from tests.server.helpers import metric, next_event, read_events, wait_for_metric
from tests.server.test_api_takeoff import PROMPTS, hf_greedy  # noqa: F401 (hf_greedy: a fixture)
from tests.server.test_serve import ready_status_after_signal

pytestmark = pytest.mark.ray
SLOTS = "takeoff_kv_slots_in_use"
# Long enough to outlast the checks made while it runs (and a disconnect left unnoticed).
LONG = {"text": "a long one", "max_new_tokens": 6000, "min_new_tokens": 6000}
LONG_ENOUGH = {**LONG, "max_new_tokens": 1500, "min_new_tokens": 1500}  # one that is awaited


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def generate(http, url, prompt):
    async with http.post(url + "/generate", json={"text": prompt, "max_new_tokens": 40}) as r:
        return r.status, r.headers.get("X-Takeoff-Replica"), await r.json()


async def test_outputs_equal_hf_greedy_and_both_replicas_serve(replica_server, http, hf_greedy):
    url, served = replica_server.url, set()
    for _ in range(5):  # concurrent requests go to the less busy replica: both, soon
        answers = await asyncio.gather(*(generate(http, url, p) for p in PROMPTS))
        for (status, replica, body), prompt in zip(answers, PROMPTS):
            assert status == 200, body
            assert body["text"] == hf_greedy(prompt, 40)
            served.add(replica)
        if len(served) == 2:
            break
    assert served == await replica_ids(http, url)
    assert len(served) == 2


async def test_every_endpoint_answers_through_the_one_port(replica_server, http):
    url = replica_server.url
    async with http.get(url + "/") as page:
        assert page.status == 200 and "text/html" in page.headers["content-type"]
        assert page.headers["X-Takeoff-Replica"]
    async with http.post(url + "/classify", json={"text": ["Great demo!", "Why?"]}) as response:
        assert response.status == 200 and len((await response.json())["result"]) == 2
    async with http.post(url + "/v1/feedback/analyze",
                         json={"text": "Thanks. The report was late.", "context": ""}) as r:
        assert r.status == 200 and len((await r.json())["sentences"]) == 2
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        whole = await client.completions.create(model="primary", prompt=PROMPTS[0], max_tokens=12,
                                                temperature=0)
        chunks = [c async for c in await client.completions.create(
            model="primary", prompt=PROMPTS[0], max_tokens=12, temperature=0, stream=True)]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text


async def test_metrics_reader_groups_and_status_report_every_replica(replica_server, http):
    url = replica_server.url
    ids = await replica_ids(http, url)
    async with http.get(url + "/reader_groups") as response:
        groups = await response.json()
    assert sorted(groups) == ["classifier", "primary"]
    for readers in groups.values():
        assert sorted(r["replica"] for r in readers) == sorted(ids)
    for replica in ids:
        assert await metric(http, url, "takeoff_kv_slots_total", f'replica="{replica}"') == 2
    async with http.get(url + "/status") as response:
        replicas = (await response.json())["replicas"]
    assert set(replicas) == ids and all(r["status"]["ready"] for r in replicas.values())


async def test_readers_cannot_be_added_or_removed_at_run_time(replica_server, http,
                                                              tiny_classifier_dir):
    """Each replica would differ, and one Ray restarts would start from the configuration."""
    url = replica_server.url
    body = {"model_name": str(tiny_classifier_dir), "consumer_group": "extra", "device": "cpu"}
    async with http.post(url + "/reader", json=body) as response:
        assert response.status == 409
        assert "--replicas" in (await response.json())["error"]["message"]
    async with http.delete(url + "/reader/classifier") as response:
        assert response.status == 409
    async with http.get(url + "/reader_groups") as response:
        assert sorted(await response.json()) == ["classifier", "primary"]


async def test_stream_arrives_token_by_token_and_leaving_frees_the_slot(replica_server, http):
    url = replica_server.url
    response = await http.post(url + "/generate_stream", json=LONG)
    assert response.status == 200
    replica = response.headers["X-Takeoff-Replica"]
    first = await next_event(response, SSEDecoder(), [])
    assert first.event == "message"
    # The first piece came while its generation still runs on that replica: nothing buffered.
    assert await metric(http, url, SLOTS, f'replica="{replica}"') == 1
    response.close()
    assert await wait_for_metric(http, url, SLOTS, 0, timeout_s=3,
                                 labels=f'replica="{replica}"') == 0


async def test_a_client_that_leaves_a_generate_frees_the_slot(replica_server, http):
    url = replica_server.url
    request = asyncio.ensure_future(http.post(url + "/generate", json=LONG))
    ids = await replica_ids(http, url)
    for _ in range(200):
        if sum([await metric(http, url, SLOTS, f'replica="{r}"') for r in ids]) == 1:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the generation never started")
    request.cancel()
    for replica in ids:
        assert await wait_for_metric(http, url, SLOTS, 0, timeout_s=3,
                                     labels=f'replica="{replica}"') == 0


async def test_a_full_server_answers_429_with_retry_after(replica_server, http):
    """Two replicas of 2 slots and a queue of 4 each hold 12 requests; 20 at once."""
    async def post():
        async with http.post(replica_server.url + "/generate",
                             json={**LONG, "max_new_tokens": 300, "min_new_tokens": 300}) as r:
            return r.status, r.headers.get("Retry-After"), await r.json()

    answers = await asyncio.gather(*(post() for _ in range(20)))
    refused = [a for a in answers if a[0] == 429]
    assert refused and all(retry == "1" for _, retry, _ in refused)
    assert all(body["error"]["type"] == "overloaded_error" for _, _, body in refused)
    assert {status for status, _, _ in answers} == {200, 429}


async def test_a_killed_replica_fails_its_stream_cleanly_and_is_replaced(replica_server, http):
    url, pids = replica_server.url, replica_server.replica_pids()
    assert len(pids) == 2
    streams = []
    for _ in range(2):  # the second goes to the idle replica
        streams.append(await http.post(url + "/generate_stream", json=LONG_ENOUGH))
        await next_event(streams[-1], SSEDecoder(), [])
    assert len({s.headers["X-Takeoff-Replica"] for s in streams}) == 2
    os.kill(pids[0], signal.SIGKILL)
    endings = [(s.headers["X-Takeoff-Replica"], (await read_events(s))[-1]) for s in streams]
    failed = [(replica, event) for replica, event in endings if event.event == "error"]
    assert len(failed) == 1  # the other stream went on to its end
    assert json.loads(failed[0][1].data)["error"]["type"] == "service_unavailable"
    assert {event.event for _, event in endings} == {"error", "metadata"}
    new_ids = await wait_for_replicas(url, 2, avoid=failed[0][0], process=replica_server.process)
    assert failed[0][0] not in new_ids
    assert (await generate(http, url, PROMPTS[0]))[0] == 200


async def test_sigterm_drains_then_stops_the_replicas_and_the_local_cluster(replica_server,
                                                                            http):
    url = replica_server.url
    stream = await http.post(url + "/generate_stream", json=LONG_ENOUGH)
    decoder, pending = SSEDecoder(), []
    await next_event(stream, decoder, pending)
    ray_pids = descendants(replica_server.process.pid)
    replica_server.terminate()
    assert await ready_status_after_signal(http, url) == 503
    async with http.post(url + "/generate", json={"text": "late"}) as late:
        assert late.status == 503
        assert (await late.json())["error"]["type"] == "service_unavailable"
    rest = pending + decoder.feed(await stream.content.read()) + decoder.close()
    assert json.loads(rest[-1].data)["generated_tokens"] == LONG_ENOUGH["max_new_tokens"]
    status, _ = replica_server.stop()  # it waits for the processes that were under it
    assert status == 0, replica_server.output()
    assert len(ray_pids) > 4  # GCS, raylet, controller, proxy, replicas, ...
    assert [pid for pid in ray_pids if is_running(pid)] == []
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", int(url.rsplit(":", 1)[1]))) != 0
