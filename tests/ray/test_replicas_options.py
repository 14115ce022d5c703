"""The replica flags, the plain server's independence from Ray, and the proxy's failure answers.
No Ray cluster here."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from takeoff.cli import main
from takeoff.replicas.options import ReplicaConfig, replica_config_from
from takeoff.replicas.proxy import ReplicaFailureMiddleware

PLAIN_SERVE = """
import asyncio, sys
from takeoff.cli import build_parser
from takeoff.config import config_from
from takeoff.replicas.options import replica_config_from
from takeoff.app import create_app

flags = ["serve", "--model", sys.argv[1], "--classifier", sys.argv[2]]
args = vars(build_parser().parse_args(flags))
assert not replica_config_from(args).on_ray
app = create_app(config_from(args))

async def start_and_stop():  # the lifespan loads the readers and runs the engine
    async with app.router.lifespan_context(app):
        return "started"

print(asyncio.run(start_and_stop()), "ray" in sys.modules)
"""


def test_the_plain_server_never_imports_ray(tiny_t5_dir, tiny_classifier_dir):
    pytest.importorskip("ray", reason="meaningful only where Ray is installed")
    result = subprocess.run([sys.executable, "-c", PLAIN_SERVE, str(tiny_t5_dir),
                             str(tiny_classifier_dir)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.stdout.split() == ["started", "False"], result.stderr


def test_flags_and_environment():
    assert not ReplicaConfig().on_ray
    config = replica_config_from({"replicas": 3}, {"TAKEOFF_NUM_CPUS_PER_REPLICA": "2.5",
                                                   "TAKEOFF_REPLICAS": "9"})
    assert (config.replicas, config.num_cpus_per_replica, config.num_threads) == (3, 2.5, 2)
    assert config.on_ray
    assert replica_config_from({}, {"TAKEOFF_RAY_ADDRESS": "10.0.0.1:6379"}).on_ray
    scaled = replica_config_from({"autoscale": "2:5"}, {})
    assert scaled.on_ray and scaled.autoscale_range == (2, 5) and scaled.initial_replicas == 2


@pytest.mark.parametrize("flags,message", [
    (["--replicas", "0"], "--replicas"),
    (["--autoscale", "4"], "MIN:MAX"),
    (["--autoscale", "3:2"], "MIN <= MAX"),
    (["--num-gpus-per-replica", "-1"], "negative"),
])
def test_bad_replica_flags_are_one_line_errors(flags, message, capsys):
    assert main(["serve", "--model", "/m", *flags]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and len(stderr.strip().splitlines()) == 1


async def run_through_middleware(app) -> tuple[int, dict, bytes]:
    messages = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    await ReplicaFailureMiddleware(app)({"type": "http", "path": "/x"}, receive, send)
    start = messages[0]
    assert start["type"] == "http.response.start"
    assert not messages[-1].get("more_body", False)
    body = b"".join(m.get("body", b"") for m in messages[1:])
    return start["status"], dict(start["headers"]), body


async def test_a_replica_gone_before_answering_is_a_503_json_error():
    async def dead_replica(scope, receive, send):
        return  # what Ray's proxy does when the replica's process died

    status, headers, body = await run_through_middleware(dead_replica)
    assert (status, headers[b"retry-after"]) == (503, b"1")
    assert json.loads(body)["error"]["type"] == "service_unavailable"


async def test_a_stream_cut_off_ends_with_an_error_event():
    async def cut_stream(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: one\r\n\r\n", "more_body": True})

    status, _, body = await run_through_middleware(cut_stream)
    assert status == 200
    first, error, _ = body.split(b"\r\n\r\n")
    assert first == b"data: one"
    event, data = error.split(b"\r\n")
    assert event == b"event: error"
    assert json.loads(data.removeprefix(b"data: "))["error"]["type"] == "service_unavailable"


async def test_the_proxys_plain_text_refusals_become_json_errors():
    async def proxy_refusal(scope, receive, send):
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await send({"type": "http.response.body", "body": b"Deployment is unavailable."})

    status, headers, body = await run_through_middleware(proxy_refusal)
    assert status == 503 and headers[b"content-type"] == b"application/json"
    assert json.loads(body)["error"]["message"] == "Deployment is unavailable."


async def test_replica_answers_pass_unchanged():
    async def replica(scope, receive, send):
        await send({"type": "http.response.start", "status": 404, "headers": [
            (b"content-type", b"text/plain"), (b"x-takeoff-replica", b"abc")]})
        await send({"type": "http.response.body", "body": b"as the replica said"})

    assert (await run_through_middleware(replica))[::2] == (404, b"as the replica said")
