"""The life of one `takeoff triton`: engine, Triton server, models, and a clean stop.

Start: the engine runs first (readers loaded, KV caches reserved); the models are written to
PyTriton's local model store before the Triton server starts, so Triton loads them at start-up
and `/v2/health/ready` says ready only once they are (PyTriton's default policy binds them after
the server says ready). `start()` returns once the callables are connected.

Stop: new requests are refused (the engine drains), then PyTriton stops Triton (SIGINT; Triton
lets running requests finish for up to --drain-timeout), closes its side of the models and
removes its workspace; then the engine stops. Python's default SIGTERM would skip all of that
and leave the workspace behind: `takeoff triton` turns SIGTERM and SIGINT into this stop.
"""
from __future__ import annotations

import logging
import os
import socket
import sysconfig
import threading
from pathlib import Path
from typing import Callable

from pytriton.triton import Triton, TritonConfig, TritonLifecyclePolicy
from pytriton.utils.workspace import Workspace

from takeoff.app import build_runner
from takeoff.config import ServerConfig
from takeoff.engine.readers import Reader
from takeoff.triton.engine_link import EngineLink
from takeoff.triton.models import triton_models
from takeoff.triton.options import TritonOptions

logger = logging.getLogger("takeoff")
MODELS_FIRST = TritonLifecyclePolicy(launch_triton_on_startup=False, local_model_store=True)
ALIVE_CHECK_S = 1.0
MAX_SOCKET_PATH = 107  # bytes of a Unix socket's path (sun_path holds 108 with the final NUL)


class TritonDeployment:
    def __init__(self, config: ServerConfig, options: TritonOptions, readers: list[Reader],
                 runner_factory: Callable = build_runner, workspace: Path | None = None) -> None:
        """`workspace`: PyTriton's working directory (a new one under $PYTRITON_HOME, by
        default ~/.cache/pytriton, when None); it must not exist yet, and is removed on stop."""
        self.config = config
        self.options = options
        self.link = EngineLink(config, readers, runner_factory)
        self.triton: Triton | None = None
        self.workspace: Workspace | None = None
        self._workspace = workspace

    def start(self) -> None:
        """Raises OSError naming the flag when a port is taken (Triton itself would exit and
        leave PyTriton waiting for it)."""
        check_ports_free(self.options)
        use_running_python_library()
        self.link.start()
        models = triton_models(self.link)
        self.workspace = Workspace(self._workspace)
        check_socket_paths(self.workspace.path, [model.name for model in models])
        self.triton = Triton(config=self._triton_config(), workspace=self.workspace,
                             triton_lifecycle_policy=MODELS_FIRST)
        for model in models:
            self.triton.bind(model.name, model.infer_func, model.inputs, model.outputs,
                             config=model.config, strict=True)
            logger.info("consumer group %r: Triton model %r (%s)", model.name, model.name,
                        "decoupled, streaming" if model.config.decoupled else
                        f"dynamic batches of up to {model.config.max_batch_size}")
        self.triton.run()
        logger.info("Triton serving on %s: HTTP %d, gRPC %d, metrics %d", self.options.host,
                    self.options.http_port, self.options.grpc_port, self.options.metrics_port)

    def wait(self, stop: threading.Event) -> bool:
        """Until `stop` is set (True) or the Triton server has died (False)."""
        while not stop.wait(ALIVE_CHECK_S):
            if not self.triton.is_alive():
                return False
        return True

    def stop(self) -> None:
        self.link.drain()
        if self.triton is not None:
            self.triton.stop()
        if self.workspace is not None:  # Triton.stop() cleans it only if Triton had started
            self.workspace.clean()
        self.link.stop()

    def _triton_config(self) -> TritonConfig:
        host, options = self.options.host, self.options
        return TritonConfig(http_address=host, http_port=options.http_port, grpc_address=host,
                            grpc_port=options.grpc_port, metrics_address=host,
                            metrics_port=options.metrics_port,
                            exit_timeout_secs=max(1, round(self.config.drain_timeout)))


def check_ports_free(options: TritonOptions) -> None:
    for flag, port in (("--http-port", options.http_port), ("--grpc-port", options.grpc_port),
                       ("--metrics-port", options.metrics_port)):
        family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((options.host, port))
            except OSError as exc:
                raise OSError(f"cannot listen on {options.host}:{port}: {exc.strerror}; choose "
                              f"another with {flag}") from None


def check_socket_paths(workspace: Path, model_names: list[str]) -> None:
    """PyTriton's sockets live in its workspace ({model}-data.sock, {model}_0_0-server.sock): a
    long workspace path makes each model fail to load, and PyTriton then waits two minutes for
    a server that has exited. Refuse at once instead."""
    longest = max(len(os.fsencode(workspace / f"{name}_0_0-server.sock")) for name in model_names)
    if longest > MAX_SOCKET_PATH:
        raise OSError(f"PyTriton's workspace {workspace} is too long a path for its Unix sockets "
                      f"({longest} bytes, at most {MAX_SOCKET_PATH}): set PYTRITON_HOME to a "
                      f"shorter directory")


def use_running_python_library() -> None:
    """Make the Triton server's Python-backend stubs load this Python's libpython.

    The stub links libpython3.X.so dynamically and the loader finds the system's first; under
    another build of the same version (pyenv, conda) the stub then fails on the first request
    (`'_thread.RLock' object has no attribute '_recursion_count'`). PyTriton passes this
    process's environment on to the server, so LD_LIBRARY_PATH set here reaches the stubs."""
    libdir = sysconfig.get_config_var("LIBDIR")
    library = sysconfig.get_config_var("LDLIBRARY") or ""
    if not libdir or not library.endswith(".so") or not (Path(libdir) / library).exists():
        return  # a static build: no libpython of its own to offer
    paths = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    if libdir not in paths:
        os.environ["LD_LIBRARY_PATH"] = ":".join([libdir, *paths])
