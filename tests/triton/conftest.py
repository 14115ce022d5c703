"""`takeoff triton` on the tiny random float32 models, one deployment per test module.

The deployment runs in this process as `takeoff triton` runs it (engine on its own loop thread,
PyTriton's callables on theirs); the Triton server and its Python-backend stubs are child
processes. Where PyTriton's wheel cannot run (not Linux x86_64 with glibc 2.35+), every test
here is skipped with that reason; where it can, a missing install fails them.
"""
from __future__ import annotations

import socket
import time
import urllib.request

import pytest

from takeoff.triton.platform import wheel_misfit

MISFIT = wheel_misfit()
# Small limits keep the tiny servers quick; float32, as the outputs are compared with Hugging
# Face's in float32.
TEST_DEFAULTS = dict(max_num_seqs=4, max_new_tokens=256, max_queue=8, log_level="warning",
                     dtype="float32")


def skip_where_pytriton_cannot_run() -> None:
    """Call at the top of a test module, before it imports tritonclient."""
    if MISFIT:
        pytest.skip(f"PyTriton cannot run here: {MISFIT}", allow_module_level=True)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory):
    from tests.tiny_models import save_tiny_sentence_encoder

    return save_tiny_sentence_encoder(tmp_path_factory.mktemp("tiny-embedder"))


@pytest.fixture(scope="module")
def deploy(tmp_path_factory, tiny_t5_dir, tiny_classifier_dir, tiny_embedder_dir):
    """deploy(runner_factory=build_runner, while_starting=None, **ServerConfig overrides) -> a
    started TritonDeployment with `.http_url` and `.grpc_url`, stopped at the module's end;
    `while_starting(deployment)` is called just before it starts."""
    from takeoff.app import build_runner
    from takeoff.config import ServerConfig
    from takeoff.engine.readers import load_readers
    from takeoff.triton.options import TritonOptions
    from takeoff.triton.server import TritonDeployment

    started = []

    def start(runner_factory=build_runner, while_starting=None, **overrides):
        options = dict(TEST_DEFAULTS, model=str(tiny_t5_dir), classifier=str(tiny_classifier_dir),
                       embedder=str(tiny_embedder_dir))
        config = ServerConfig(**dict(options, **overrides))
        http, grpc, metrics = free_ports(3)
        ports = TritonOptions(http_port=http, grpc_port=grpc, metrics_port=metrics)
        deployment = TritonDeployment(config, ports, load_readers(config), runner_factory,
                                      workspace=tmp_path_factory.mktemp("pytriton") / "workspace")
        deployment.http_url = f"http://127.0.0.1:{http}"
        deployment.grpc_url = f"127.0.0.1:{grpc}"
        started.append(deployment)
        if while_starting is not None:
            while_starting(deployment)
        deployment.start()
        return deployment

    yield start
    for deployment in started:
        deployment.stop()


def is_ready(http_url: str) -> bool:
    try:
        with urllib.request.urlopen(http_url + "/v2/health/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until(condition, timeout_s: float = 30.0, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
    return True
