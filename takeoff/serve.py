"""`takeoff serve`: load the models, then serve them with uvicorn (uvloop when available).

Graceful drain: the first SIGTERM/SIGINT marks the engine draining (new requests and /ready get
503) while the listener stays open; once the running requests have finished (or drain_timeout
has passed) uvicorn shuts down as usual. A second signal exits at once.
"""
from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import logging
import socket
import sys
import time

import uvicorn

from takeoff.config import ServerConfig, add_config_arguments, config_from
from takeoff.replicas.options import add_replica_arguments, replica_config_from

logger = logging.getLogger("takeoff")
# Seconds an idle keep-alive connection stays open: longer than aiohttp's 15 (our client's and
# the benchmarks'), so the client closes it first. With uvicorn's 5, a client that reused a
# connection the server was closing got "Server disconnected" or a reset (the soak's 5 a run).
KEEP_ALIVE_S = 20


def add_serve_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve a generator and/or a classifier over HTTP",
        description="Serve a Flan-T5 generator and/or a sequence classifier with continuous "
                    "batching (Takeoff API, OpenAI-compatible /v1, the feedback app). Every flag "
                    "can also be set with the TAKEOFF_* environment variable named after it.")
    add_config_arguments(parser)
    add_replica_arguments(parser)
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    try:
        config = config_from(vars(args))
        replicas = replica_config_from(vars(args))
    except ValueError as exc:
        print(f"takeoff serve: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), format="%(levelname)s:     %(message)s")
    if (warning := exposure_warning(config)) is not None:
        logger.warning(warning)
    if replicas.on_ray:
        from takeoff.replicas.driver import run_replicas

        return run_replicas(config, replicas)
    from kernels.loader import ModelLoadError
    from takeoff.app import create_app
    from takeoff.engine.readers import load_readers

    try:
        sockets = bind_sockets(config)
        readers = load_readers(config)
    except (ModelLoadError, ValueError, OSError) as exc:
        print(f"takeoff serve: error: {exc}", file=sys.stderr)
        return 1
    app = create_app(config, readers)
    logger.info("serving on %s", ", ".join(f"{name} {config.host}:{port}"
                                            for name, port in config.listen_ports.items()))
    server = DrainingServer(uvicorn_config(app, config))
    server.run(sockets=sockets)
    return 0


def exposure_warning(config: ServerConfig) -> str | None:
    """What to tell someone who serves every API to the network with no key: None on a
    loopback address, or with --api-key."""
    if config.api_key:
        return None
    try:
        loopback = ipaddress.ip_address(config.host).is_loopback
    except ValueError:  # a host name
        loopback = config.host == "localhost"
    if loopback:
        return None
    return (f"listening on {config.host} with no --api-key: anyone who can reach this machine "
            f"can use every API, the management API (load and remove readers) included; set "
            f"--api-key (TAKEOFF_API_KEY) or --host 127.0.0.1")


def bind_sockets(config: ServerConfig) -> list[socket.socket]:
    """One listening socket per API port (main, management, OpenAI); OSError names the port."""
    sockets = []
    for name, port in config.listen_ports.items():
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((config.host, port))
        except OSError as exc:
            sock.close()
            for bound in sockets:
                bound.close()
            raise OSError(f"cannot listen on {config.host}:{port} ({name} API): {exc.strerror}; "
                          f"choose another with --{'' if name == 'main' else name + '-'}port"
                          ) from None
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


def uvicorn_config(app, config: ServerConfig) -> uvicorn.Config:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return uvicorn.Config(app, host=config.host, port=config.port, loop=loop,
                          log_level=config.log_level, timeout_graceful_shutdown=5,
                          timeout_keep_alive=KEEP_ALIVE_S,
                          access_log=config.log_level == "debug")


class DrainingServer(uvicorn.Server):
    """uvicorn, but the first exit signal drains the engine before shutting down."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.drain_started: float | None = None

    def handle_exit(self, sig, frame) -> None:
        if self.drain_started is not None or self.should_exit:
            super().handle_exit(sig, frame)
            return
        self.drain_started = time.monotonic()

    async def on_tick(self, counter: int) -> bool:
        if self.drain_started is not None and not self.should_exit:
            engine = getattr(self.config.app.state, "engine", None)
            if engine is not None and not engine.draining:
                engine.draining = True
                logger.info("draining: finishing running requests, refusing new ones")
            waited = time.monotonic() - self.drain_started
            finished = engine is None or (engine.is_idle and not self.server_state.tasks)
            if finished or waited > engine.config.drain_timeout:
                self.should_exit = True
        return await super().on_tick(counter)
