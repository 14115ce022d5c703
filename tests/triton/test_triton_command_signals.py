"""`takeoff triton` as a command: SIGTERM stops Triton and every process it started and leaves no
workspace or shared memory behind; a taken port is named in one line."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.triton.conftest import free_ports, is_ready, skip_where_pytriton_cannot_run, wait_until

skip_where_pytriton_cannot_run()
import tritonclient.http as httpclient  # noqa: E402

from benchmarks.serving_replicas import descendants  # noqa: E402
from takeoff.cli import main  # noqa: E402
from takeoff.triton import command  # noqa: E402
from tests.ray.conftest import is_running  # noqa: E402
from tests.triton.test_triton_models import TEXTS, http_text  # noqa: E402

pytestmark = pytest.mark.triton
START_TIMEOUT_S = 300
STOP_TIMEOUT_S = 90


def test_sigterm_stops_triton_and_leaves_nothing_behind(tmp_path, tiny_classifier_dir):
    http, grpc, metrics = free_ports(3)
    home = Path(tempfile.mkdtemp(prefix="tt-"))  # short: PyTriton's socket paths live under it
    command = [sys.executable, "-m", "takeoff.cli", "triton", "--classifier",
               str(tiny_classifier_dir), "--dtype", "float32", "--log-level", "warning",
               "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    log = tmp_path / "triton.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTRITON_HOME": str(home),
                                        "OMP_NUM_THREADS": "1"})
    try:
        url = f"http://127.0.0.1:{http}"
        assert wait_until(lambda: is_ready(url) or process.poll() is not None,
                          timeout_s=START_TIMEOUT_S), log.read_text()[-3000:]
        client = httpclient.InferenceServerClient(f"127.0.0.1:{http}")
        assert client.infer("classifier", [http_text(TEXTS)]).as_numpy("probabilities").shape \
            == (2, 9)
        started = descendants(process.pid)
        assert any("tritonserver" in _cmdline(pid) for pid in started)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    assert wait_until(lambda: not any(is_running(pid) for pid in started), timeout_s=30)
    assert list(home.iterdir()) == []  # PyTriton's workspace, with its copy of Triton, is gone
    home.rmdir()
    assert [p for p in Path("/dev/shm").iterdir() if f"pytrtion{process.pid}-" in p.name] == []


def test_a_taken_port_is_named_in_one_line(tiny_classifier_dir, capsys):
    import socket

    http, grpc, metrics = free_ports(3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", grpc))
        taken.listen()
        status = main(["triton", "--classifier", str(tiny_classifier_dir),
                       "--http-port", str(http), "--grpc-port", str(grpc),
                       "--metrics-port", str(metrics)])
    assert status == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"127.0.0.1:{grpc}" in error and "--grpc-port" in error


def test_a_workspace_too_deep_for_unix_sockets_is_refused_at_once(tmp_path, tiny_classifier_dir,
                                                                  monkeypatch, capsys):
    home = tmp_path / ("deep" * 20)
    monkeypatch.setattr("pytriton.constants.PYTRITON_HOME", home)
    monkeypatch.setattr(command, "_on_exit_signals", lambda stop: None)  # keep pytest's own
    http, grpc, metrics = free_ports(3)
    status = main(["triton", "--classifier", str(tiny_classifier_dir), "--http-port", str(http),
                   "--grpc-port", str(grpc), "--metrics-port", str(metrics)])
    assert status == 1
    error = capsys.readouterr().err
    assert "too long a path for its Unix sockets" in error and "PYTRITON_HOME" in error
    assert list(home.iterdir()) == []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
