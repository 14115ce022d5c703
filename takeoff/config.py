"""The server's configuration: one frozen dataclass, from CLI flags and TAKEOFF_* variables.

Each option is declared once in `OPTIONS` (flag, type, help); `takeoff serve --help`, the
environment variable names and the checks all come from that table. A flag given on the command
line wins over its environment variable, which wins over the default.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from takeoff.api.chat_template import CHAT_TEMPLATES

ENV_PREFIX = "TAKEOFF_"


@dataclass(frozen=True)
class ServerConfig:
    model: str | None = None  # generator directory (a T5-family model); None: no generator
    classifier: str | None = None  # classifier directory; None: no classifier
    embedder: str | None = None  # sentence-transformers directory; None: no embedder
    config_file: str | None = None  # a Takeoff-style YAML manifest of readers, instead of the three
    device: str = "cpu"
    dtype: str = "auto"  # checked by kernels.loader, which alone knows the devices
    quantize: str = "none"  # "int8": the generator's linears in int8 (CPU); checked by kernels.loader
    host: str = "0.0.0.0"
    port: int = 3000
    management_port: int | None = None  # Takeoff's management API also here; None: port + 1
    openai_port: int | None = 3003  # the OpenAI API also here, as Takeoff does; 0: main port only
    max_num_seqs: int = 64  # KV slots: generations decoding at once
    max_queue: int = 256  # waiting requests before new ones get 429
    max_num_batched_tokens: int = 1024  # tokens per reader step (padded prefill + decodes)
    max_classify_batch: int = 32  # classification inputs per engine step
    max_input_len: int = 512  # longest encoder input accepted (capped by each model's own limit)
    max_new_tokens: int = 512  # largest max_new_tokens a request may ask for
    queue_timeout: float = 60.0  # seconds a request may wait for a slot before it fails
    api_key: str | None = None  # when set, every endpoint but /health needs this bearer token
    max_body_bytes: int = 1 << 20  # request bodies over this get 413
    drain_timeout: float = 30.0  # on SIGTERM, seconds to let running requests finish
    watchdog_timeout: float = 60.0  # /ready answers 503 while one step has run longer than this
    log_level: str = "info"
    generator_group: str = "primary"  # consumer group names of the start-up readers
    classifier_group: str = "classifier"
    embedder_group: str = "embed"
    chat_template: str = "feedback"  # how /v1/chat/completions builds the generator's input

    def __post_init__(self) -> None:
        if not (self.model or self.classifier or self.embedder or self.config_file):
            raise ValueError("give at least one model: --model DIR, --classifier DIR, --embedder "
                             "DIR, or a manifest with --config FILE")
        if self.config_file and (self.model or self.classifier or self.embedder):
            raise ValueError("--config FILE names the readers: leave out --model, --classifier "
                             "and --embedder")
        for name in ("port", "max_num_seqs", "max_queue", "max_num_batched_tokens",
                     "max_classify_batch", "max_input_len", "max_new_tokens", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{_flag(name)} must be at least 1")
        for name in ("queue_timeout", "drain_timeout", "watchdog_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{_flag(name)} must be positive")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
        if self.chat_template not in CHAT_TEMPLATES:
            raise ValueError(f"--chat-template must be one of {', '.join(CHAT_TEMPLATES)}")
        groups = (self.generator_group, self.classifier_group, self.embedder_group)
        if len(set(groups)) != len(groups):
            raise ValueError("the consumer groups of the start-up readers need different names")
        self._check_ports()

    @property
    def listen_ports(self) -> dict[str, int]:
        """Each API's own port: "main", "management", "openai" (an API whose port is 0 or the
        main one is served on the main port only)."""
        management = self.port + 1 if self.management_port is None else self.management_port
        ports = {"main": self.port, "management": management, "openai": self.openai_port or 0}
        return {name: port for name, port in ports.items()
                if port and (name == "main" or port != self.port)}

    def _check_ports(self) -> None:
        for name in ("management_port", "openai_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise ValueError(f"{_flag(name)} must be between 0 and 65535")
        ports = list(self.listen_ports.values())
        if len(set(ports)) != len(ports):
            raise ValueError(f"the main, management and OpenAI ports must differ (got "
                             f"{self.listen_ports}); set --management-port / --openai-port, or 0 "
                             f"to serve that API on the main port only")


LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

# field name -> (parser for the flag and the environment variable, help text)
OPTIONS: dict[str, tuple[Callable[[str], Any], str]] = {
    "model": (str, "directory of the generator (a Flan-T5 / T5 model saved by Hugging Face)"),
    "classifier": (str, "directory of the classifier (ELECTRA/BERT-style, sequence classification)"),
    "embedder": (str, "directory of a sentence-transformers embedding model (BERT family)"),
    "config_file": (str, "a Takeoff YAML manifest (takeoff: readers_config: {id: {model_name, "
                         "device, consumer_group, max_batch_size, max_sequence_length}}) instead "
                         "of --model/--classifier/--embedder"),
    "device": (str, "where the models run: cpu, cuda or cuda:N (default: cpu)"),
    "dtype": (str, "auto, float32, bfloat16 or float16; auto is bfloat16 where the hardware "
                   "computes it natively (CPUs with AMX or AVX512-BF16, CUDA compute capability "
                   "8.0+) and float32 elsewhere (default: auto)"),
    "quantize": (str, "none or int8: the generator's linear layers in int8, float32 between them "
                      "(CPU only; default: none)"),
    "host": (str, "address to listen on (default: 0.0.0.0)"),
    "port": (int, "port to listen on (default: 3000)"),
    "management_port": (int, "port of the management API (readers, status), also served on "
                             "--port; 0: --port only (default: port + 1)"),
    "openai_port": (int, "port of the OpenAI API, also served on --port; 0: --port only "
                         "(default: 3003)"),
    "max_num_seqs": (int, "generations decoding at once, i.e. KV-cache slots (default: 64)"),
    "max_queue": (int, "requests that may wait per reader beyond those it runs at once; more "
                       "are refused with 429 (default: 256)"),
    "max_num_batched_tokens": (int, "token budget of one step of a reader: padded prompt tokens "
                                    "of its prefills plus one per running stream; bounds how "
                                    "long new prompts can hold up running streams (default: "
                                    "1024)"),
    "max_classify_batch": (int, "classification inputs in one engine step (default: 32)"),
    "max_input_len": (int, "longest input in tokens; longer gets 413 (default: 512, capped by "
                           "the model)"),
    "max_new_tokens": (int, "largest max_new_tokens a request may ask for (default: 512)"),
    "queue_timeout": (float, "seconds a request may wait in the queue (default: 60)"),
    "api_key": (str, "require 'Authorization: Bearer KEY' on every endpoint but /health"),
    "max_body_bytes": (int, "largest request body in bytes; larger gets 413 (default: 1048576)"),
    "drain_timeout": (float, "on SIGTERM, seconds running requests get to finish (default: 30)"),
    "watchdog_timeout": (float, "/ready answers 503 while one engine step has run longer than "
                                "this many seconds (default: 60)"),
    "log_level": (str, f"one of {', '.join(LOG_LEVELS)} (default: info)"),
    "generator_group": (str, "consumer group of the generator (default: primary)"),
    "classifier_group": (str, "consumer group of the classifier (default: classifier)"),
    "embedder_group": (str, "consumer group of the embedder (default: embed)"),
    "chat_template": (str, "how /v1/chat/completions turns messages into the generator group's "
                           "input: feedback (system message = context, last user message = the "
                           "feedback to rewrite) or transcript (default: feedback)"),
}


def _flag(name: str) -> str:
    """The `takeoff serve` flag of a ServerConfig field."""
    return "--config" if name == "config_file" else "--" + name.replace("_", "-")


flag = _flag


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def add_config_arguments(parser: argparse.ArgumentParser,
                         options: Mapping[str, tuple] = OPTIONS) -> None:
    """One flag per option (ServerConfig's by default); all default to None so the environment
    can fill in."""
    for name, (kind, help_text) in options.items():
        metavar = "DIR" if name in ("model", "classifier", "embedder") else name.upper()
        parser.add_argument(_flag(name), dest=name, type=kind, default=None, metavar=metavar,
                            help=f"{help_text} [env {env_name(name)}]")


def config_from(args: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                config_type: type = ServerConfig, options: Mapping[str, tuple] = OPTIONS):
    """Flags first, then TAKEOFF_* variables, then the defaults. Raises ValueError, one line."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in fields(config_type):
        kind, _ = options[field.name]
        if args.get(field.name) is not None:
            values[field.name] = args[field.name]
        elif environ.get(env_name(field.name)):
            raw = environ[env_name(field.name)]
            try:
                values[field.name] = kind(raw)
            except ValueError:
                raise ValueError(f"{env_name(field.name)}={raw!r} is not a valid "
                                 f"{kind.__name__}") from None
    return config_type(**values)
