"""`takeoff triton`'s flags: the model and engine flags of `takeoff serve`, plus where Triton
listens.

Declared as the server's own are (takeoff/config.py: each field says its default and help once,
a TAKEOFF_* variable per flag, flag over variable over default). The model and engine settings
are a ServerConfig, as for `takeoff serve`, so readers load and batch the same way; its HTTP-only
fields (HTTP_ONLY) have no flag here, and their variables are not read: they keep their defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from takeoff.config import ServerConfig, add_config_arguments, config_from, flag, option

# ServerConfig fields only the HTTP server uses (Triton's own address is TritonOptions.host).
HTTP_ONLY = ("host", "port", "management_port", "openai_port", "api_key", "max_body_bytes",
             "watchdog_timeout", "chat_template", "feedback_app")


@dataclass(frozen=True)
class TritonOptions:
    host: str = option("127.0.0.1", "address Triton's HTTP, gRPC and metrics endpoints listen "
                                    "on; any but a loopback one serves every model to the "
                                    "network, with no key")
    http_port: int = option(8000, "Triton's HTTP/REST port: KServe v2 infer, generate_stream")
    grpc_port: int = option(8001, "Triton's gRPC port: KServe v2 infer and streaming")
    metrics_port: int = option(8002, "Triton's Prometheus metrics port")

    def __post_init__(self) -> None:
        ports = {flag(name): getattr(self, name)
                 for name in ("http_port", "grpc_port", "metrics_port")}
        for name, port in ports.items():
            if not 1 <= port <= 65535:
                raise ValueError(f"{name} must be between 1 and 65535")
        if len(set(ports.values())) != len(ports):
            raise ValueError("--http-port, --grpc-port and --metrics-port must differ")


def add_triton_arguments(parser) -> None:
    add_config_arguments(parser.add_argument_group("models and engine"), ServerConfig,
                         exclude=HTTP_ONLY)
    add_config_arguments(parser.add_argument_group("Triton"), TritonOptions)


def configs_from(args: Mapping[str, Any], environ: Mapping[str, str] | None = None
                 ) -> tuple[ServerConfig, TritonOptions]:
    """Flags first, then TAKEOFF_* variables, then the defaults. Raises ValueError, one line."""
    return (config_from(args, environ, ServerConfig, exclude=HTTP_ONLY),
            config_from(args, environ, TritonOptions))
