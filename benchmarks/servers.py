"""Servers a benchmark starts: a subprocess on a free 127.0.0.1 port, ready-checked, always stopped.

`ServerProcess` runs any command that serves HTTP (`takeoff serve`, a baseline) in its own
process group, waits for its ready path, and on leaving the `with` block (normally, on an error or
on Ctrl-C) sends SIGTERM, then SIGKILL if it has not exited in time. Its memory is read from
/proc (Linux): `peak_rss_mb` is the kernel's high-water mark of the resident set.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, command: list[str], port: int, log_path: Path, *, ready_path: str = "/ready",
                 env: dict[str, str] | None = None, start_timeout_s: float = 300,
                 stop_timeout_s: float = 60) -> None:
        self.command = command
        self.url = f"http://{HOST}:{port}"
        self.log_path = log_path
        self.ready_path = ready_path
        self.env = {**os.environ, **(env or {})}
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def __enter__(self) -> "ServerProcess":
        with open(self.log_path, "w") as log:
            # Its own session: a Ctrl-C in the terminal reaches the benchmark, which stops it.
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[:4]} exited: {self.log_tail()}")
            if is_ready(self.url + self.ready_path):
                return
            time.sleep(0.5)
        raise RuntimeError(f"{self.command[:4]} was not ready in {self.start_timeout_s:.0f} s")

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, num_chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-num_chars:]

    def rss_mb(self) -> float | None:
        return process_memory_mb(self.pid, "VmRSS")

    def peak_rss_mb(self) -> float | None:
        return process_memory_mb(self.pid, "VmHWM")


@contextlib.contextmanager
def stopping_servers_on_interrupt() -> Iterator[None]:
    """Inside it SIGTERM is a KeyboardInterrupt, as Ctrl-C: the `with ServerProcess` blocks
    within stop their servers, then the program exits with one line instead of a traceback."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    except KeyboardInterrupt:
        raise SystemExit("interrupted; every server it started is stopped") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def process_memory_mb(pid: int | None, field: str = "VmRSS") -> float | None:
    """VmRSS (now) or VmHWM (peak) of a process, in MiB; None where /proc does not tell."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # the kernel gives kB
    except OSError:
        return None
    return None


def threads_env(num_threads: int) -> dict[str, str]:
    """The environment that holds a server's torch/OpenMP and MKL to num_threads."""
    return {"OMP_NUM_THREADS": str(num_threads), "MKL_NUM_THREADS": str(num_threads)}


def takeoff_command(port: int, model_dir: Path | None, classifier_dir: Path | None,
                    *options: str) -> list[str]:
    """`takeoff serve` on 127.0.0.1:port with these models and extra flags; the management and
    OpenAI APIs on that port only (their own default ports would clash between servers)."""
    command = [sys.executable, "-m", "takeoff.cli", "serve", "--host", HOST, "--port", str(port),
               "--management-port", "0", "--openai-port", "0"]
    if model_dir is not None:
        command += ["--model", str(model_dir)]
    if classifier_dir is not None:
        command += ["--classifier", str(classifier_dir)]
    return command + list(options)
