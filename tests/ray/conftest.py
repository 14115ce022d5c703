"""`takeoff serve --replicas 2` in a subprocess: a local Ray cluster on 127.0.0.1, the tiny models.

One cluster per test module (`replica_server`, module scope), shut down at the module's end (the
SIGTERM test may do it first). The server's output goes to a file: Ray writes a lot, and a full
pipe would stall it.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.serving_replicas import descendants, wait_for_replicas
from tests.server.test_serve import free_port

START_TIMEOUT_S = 150
STOP_TIMEOUT_S = 60
REPLICA_TITLE = "ray::ServeReplica:takeoff"  # how Ray titles a replica's worker process


@dataclass
class ReplicaServer:
    url: str
    process: subprocess.Popen
    log: Path
    terminated: bool = False

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def replica_pids(self) -> list[int]:
        return [pid for pid in descendants(self.process.pid) if REPLICA_TITLE in cmdline(pid)]

    def terminate(self) -> None:
        """SIGTERM, once (a second one would end it at once)."""
        if not self.terminated and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.terminated = True

    def stop(self) -> tuple[int, list[int]]:
        """SIGTERM, then wait: (exit status, the pids that were under it and still live).
        Past the timeout everything under it is killed and TimeoutExpired raised."""
        ray_pids = descendants(self.process.pid)
        self.terminate()
        try:
            status = self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for pid in [self.process.pid, *ray_pids]:
                _kill(pid)
            self.process.wait()
            raise
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while (alive := [p for p in ray_pids if is_running(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in alive:
            _kill(pid)
        return status, alive


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie lingers where PID 1 does not reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_replica_server(tmp_path: Path, model: Path, classifier: Path, *flags: str):
    port = free_port()
    log = tmp_path / "takeoff-serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "takeoff.cli", "serve", "--model", str(model),
               "--classifier", str(classifier), "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", *flags]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    return ReplicaServer(f"http://127.0.0.1:{port}", process, log)


@pytest.fixture(scope="module")
def replica_server(tmp_path_factory, tiny_t5_dir, tiny_classifier_dir):
    """Two replicas; small limits so a burst of long requests fills them."""
    server = start_replica_server(tmp_path_factory.mktemp("replicas"), tiny_t5_dir,
                                  tiny_classifier_dir, "--replicas", "2",
                                  "--num-cpus-per-replica", "1", "--max-num-seqs", "2",
                                  "--max-queue", "4", "--max-new-tokens", "6000")
    try:
        asyncio.run(wait_for_replicas(server.url, 2, START_TIMEOUT_S, process=server.process))
    except RuntimeError:
        server.stop()
        raise RuntimeError(f"the replicas did not start:\n{server.output()}") from None
    yield server
    server.stop()
