"""`takeoff triton`'s flags: the model and engine flags of `takeoff serve`, plus where Triton
listens.

Declared like the server's own (takeoff.config: one table, a TAKEOFF_* variable per flag, flag over
variable over default). The model and engine settings are a ServerConfig, as for `takeoff serve`,
so readers load and batch the same way; its HTTP-only settings (ports, API key, body limit, chat
template, watchdog) have no flag here and keep their defaults.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from takeoff.config import OPTIONS, ServerConfig, add_config_arguments, config_from, env_name

HTTP_ONLY = ("host", "port", "management_port", "openai_port", "api_key", "max_body_bytes",
             "watchdog_timeout", "chat_template")
MODEL_OPTIONS = {name: option for name, option in OPTIONS.items() if name not in HTTP_ONLY}


@dataclass(frozen=True)
class TritonOptions:
    host: str = "127.0.0.1"  # Triton's HTTP, gRPC and metrics endpoints all listen here
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002

    def __post_init__(self) -> None:
        ports = {"--http-port": self.http_port, "--grpc-port": self.grpc_port,
                 "--metrics-port": self.metrics_port}
        for flag, port in ports.items():
            if not 1 <= port <= 65535:
                raise ValueError(f"{flag} must be between 1 and 65535")
        if len(set(ports.values())) != len(ports):
            raise ValueError("--http-port, --grpc-port and --metrics-port must differ")


# field name -> (parser for the flag and the environment variable, help text)
TRITON_OPTIONS: dict[str, tuple[Callable[[str], Any], str]] = {
    "host": (str, "address Triton's HTTP, gRPC and metrics endpoints listen on (default: "
                  "127.0.0.1)"),
    "http_port": (int, "Triton's HTTP/REST port: KServe v2 infer, generate_stream (default: "
                       "8000)"),
    "grpc_port": (int, "Triton's gRPC port: KServe v2 infer and streaming (default: 8001)"),
    "metrics_port": (int, "Triton's Prometheus metrics port (default: 8002)"),
}


def add_triton_arguments(parser) -> None:
    add_config_arguments(parser.add_argument_group("models and engine"), MODEL_OPTIONS)
    add_config_arguments(parser.add_argument_group("Triton"), TRITON_OPTIONS)


def configs_from(args: Mapping[str, Any], environ: Mapping[str, str] | None = None
                 ) -> tuple[ServerConfig, TritonOptions]:
    """Flags first, then TAKEOFF_* variables, then the defaults. Raises ValueError, one line.
    `takeoff serve`'s variables for flags this command lacks (TAKEOFF_PORT...) are not read."""
    environ = os.environ if environ is None else environ
    server_env = {env_name(name): environ[env_name(name)] for name in MODEL_OPTIONS
                  if env_name(name) in environ}
    model_args = {f.name: args.get(f.name) if f.name in MODEL_OPTIONS else None
                  for f in fields(ServerConfig)}
    config = config_from(model_args, server_env)
    return config, config_from(args, environ, TritonOptions, TRITON_OPTIONS)
