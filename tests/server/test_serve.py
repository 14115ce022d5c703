"""`takeoff serve`: its flags and environment variables, load errors, and the drain on SIGTERM."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import aiohttp
import pytest

from clients.sse import SSEDecoder
from takeoff.cli import main
from takeoff.config import ServerConfig, config_from, env_name, flag
from takeoff.serve import exposure_warning
from tests.server.helpers import next_event


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "takeoff.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_help_documents_every_flag_and_its_variable():
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for field in fields(ServerConfig):
        assert flag(field.name) in result.stdout
        assert env_name(field.name) in result.stdout
    assert "(default: None)" not in result.stdout


def test_flags_win_over_environment_which_wins_over_defaults():
    environ = {"TAKEOFF_MODEL": "/m", "TAKEOFF_PORT": "4000", "TAKEOFF_MAX_QUEUE": "9",
               "TAKEOFF_API_KEY": "k", "TAKEOFF_QUEUE_TIMEOUT": "2.5"}
    config = config_from({"port": 5000, "model": None}, environ)
    assert (config.model, config.port, config.max_queue, config.api_key,
            config.queue_timeout) == ("/m", 5000, 9, "k", 2.5)
    assert config.max_num_seqs == ServerConfig.max_num_seqs
    with pytest.raises(ValueError, match="TAKEOFF_PORT"):
        config_from({}, {"TAKEOFF_MODEL": "/m", "TAKEOFF_PORT": "eighty"})
    with pytest.raises(ValueError, match="at least one model"):
        config_from({}, {})
    with pytest.raises(ValueError, match="--max-num-seqs"):
        config_from({"max_num_seqs": 0}, {"TAKEOFF_MODEL": "/m"})


@pytest.mark.parametrize("args,expected_code,message", [
    (["--model", "/no/such/dir"], 1, "does not exist"),
    (["--classifier", "CLASSIFIER", "--model", "CLASSIFIER"], 1, "encoder-decoder"),
    (["--classifier", "CLASSIFIER", "--device", "tpu"], 1, "device"),
    (["--classifier", "CLASSIFIER", "--dtype", "int3"], 1, "dtype"),
    ([], 2, "at least one model"),
    (["--model", "/m", "--max-queue", "0"], 2, "--max-queue"),
    (["--model", "/m", "--generation-config", "merge"], 2, "--generation-config must be one of auto, ignore"),
])
def test_clear_one_line_errors(args, expected_code, message, tiny_classifier_dir, capsys,
                               monkeypatch):
    monkeypatch.delenv("TAKEOFF_MODEL", raising=False)
    monkeypatch.delenv("TAKEOFF_CLASSIFIER", raising=False)
    args = [str(tiny_classifier_dir) if a == "CLASSIFIER" else a for a in args]
    assert main(["serve", *args]) == expected_code
    stderr = capsys.readouterr().err
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_ready(http, url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        try:
            async with http.get(url + "/ready") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"server did not become ready: {process.communicate(timeout=5)}")


async def ready_status_after_signal(http, url: str) -> int:
    """/ready's status once the server has handled the signal (it does so on its next tick)."""
    for _ in range(100):
        async with http.get(url + "/ready") as ready:
            if ready.status != 200:
                return ready.status
        await asyncio.sleep(0.05)
    return 200


async def test_sigterm_drains_running_streams_then_exits(tiny_t5_dir, tiny_classifier_dir):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"TAKEOFF_MODEL": str(tiny_t5_dir), "TAKEOFF_CLASSIFIER": str(tiny_classifier_dir),
           "TAKEOFF_PORT": str(port), "TAKEOFF_HOST": "127.0.0.1", "TAKEOFF_MAX_NUM_SEQS": "2",
           "TAKEOFF_MAX_NEW_TOKENS": "1200", "TAKEOFF_LOG_LEVEL": "warning",
           "TAKEOFF_MANAGEMENT_PORT": "0", "TAKEOFF_OPENAI_PORT": "0"}
    process = subprocess.Popen([sys.executable, "-m", "takeoff.cli", "serve"],
                               env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, url, process)
            body = {"text": "a long one", "max_new_tokens": 1200, "min_new_tokens": 1200}
            async with http.post(url + "/generate_stream", json=body) as stream:
                decoder, pending = SSEDecoder(), []
                await next_event(stream, decoder, pending)
                process.send_signal(signal.SIGTERM)
                assert await ready_status_after_signal(http, url) == 503
                async with http.post(url + "/generate", json={"text": "late"}) as late:
                    assert late.status == 503
                    assert (await late.json())["error"]["type"] == "service_unavailable"
                rest = pending + decoder.feed(await stream.content.read()) + decoder.close()
            assert rest[-1].event == "metadata"
            assert json.loads(rest[-1].data)["generated_tokens"] == 1200
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("host, api_key, warned", [
    ("0.0.0.0", None, True), ("::", None, True), ("10.1.2.3", None, True),
    ("example.org", None, True), ("0.0.0.0", "k", False), ("127.0.0.1", None, False),
    ("::1", None, False), ("localhost", None, False)])
def test_serving_the_network_without_a_key_says_so(host, api_key, warned):
    warning = exposure_warning(ServerConfig(model="/m", host=host, api_key=api_key))
    assert (warning is not None) is warned
    if warned:
        assert host in warning and "--api-key" in warning


@pytest.mark.parametrize("arguments, host", [([], "127.0.0.1"), (["HOST=0.0.0.0"], "0.0.0.0")])
def test_make_serve_listens_on_loopback_unless_told(arguments, host):
    dry_run = subprocess.run(["make", "-n", "serve", *arguments], capture_output=True,
                             text=True, cwd=Path(__file__).resolve().parents[2])
    assert f"--host {host} " in dry_run.stdout, dry_run.stdout + dry_run.stderr
