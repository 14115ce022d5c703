"""The server's configuration: one frozen dataclass, from CLI flags and TAKEOFF_* variables.

Each option is declared once, as a field made by `option(default, help)`: `takeoff serve --help`
(the flag, its help and its default), the environment variable's name, how its text is parsed
(the field's type) and the scheduler's settings (takeoff/engine/engine.py builds each reader's
SchedulerConfig from these) all come from that field. A flag given on the command line wins over
its environment variable, which wins over the default.
"""
from __future__ import annotations

import argparse
import os
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Collection, Mapping

from takeoff.api.chat_template import CHAT_TEMPLATES

ENV_PREFIX = "TAKEOFF_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
FEEDBACK_APP = ("auto", "on", "off")


def option(default: Any, help: str, shown: str | None = None) -> Any:
    """A configuration field: its default and its help, said once. `shown` is the default as
    --help says it, when the value alone would not say it (None: port + 1)."""
    return field(default=default, metadata={"help": help, "shown": shown})


@dataclass(frozen=True)
class ServerConfig:
    model: str | None = option(None, "directory of the generator (a Flan-T5 / T5 model saved by "
                                     "Hugging Face); none: no generator")
    classifier: str | None = option(None, "directory of the classifier (ELECTRA/BERT-style, "
                                          "sequence classification); none: no classifier")
    embedder: str | None = option(None, "directory of a sentence-transformers embedding model "
                                        "(BERT family); none: no embedder")
    config_file: str | None = option(None, "a Takeoff YAML manifest (takeoff: readers_config: {id: "
                                           "{model_name, device, consumer_group, max_batch_size, "
                                           "max_sequence_length}}) instead of --model/"
                                           "--classifier/--embedder")
    device: str = option("cpu", "where the models run: cpu, cuda or cuda:N")
    dtype: str = option("auto", "auto, float32, bfloat16 or float16; auto is bfloat16 where the "
                                "hardware computes it natively (CPUs with AMX or AVX512-BF16, CUDA "
                                "compute capability 8.0+) and float32 elsewhere")
    quantize: str = option("none", "none or int8: the generator's linear layers in int8, "
                                   "float32 between them (CPU only)")
    host: str = option("0.0.0.0", "address to listen on; any but a loopback one exposes the "
                                  "server to the network: give it an --api-key")
    port: int = option(3000, "port to listen on")
    management_port: int | None = option(None, "port of the management API (readers, status), "
                                               "also served on --port; 0: --port only",
                                         shown="port + 1")
    openai_port: int | None = option(3003, "port of the OpenAI API, also served on --port; 0: "
                                           "--port only")
    max_num_seqs: int = option(64, "generations decoding at once, i.e. KV-cache slots")
    max_queue: int = option(256, "requests that may wait per reader beyond those it runs at "
                                 "once; more are refused with 429")
    max_num_batched_tokens: int = option(1024, "token budget of one step of a reader: padded "
                                               "prompt tokens of its prefills plus one per "
                                               "running stream; bounds how long new prompts can "
                                               "hold up running streams")
    max_classify_batch: int = option(32, "classification or embedding inputs in one engine step")
    max_input_len: int = option(512, "longest input in tokens; longer gets 413 (capped by the "
                                     "model's own limit)")
    max_new_tokens: int = option(512, "largest max_new_tokens a request may ask for; a default "
                                      "above it is lowered to it")
    max_num_beams: int = option(8, "largest num_beams a request may ask for (a beam search holds "
                                   "one KV slot per beam); a default above it is lowered to it")
    queue_timeout: float = option(60.0, "seconds a request may wait for a slot before it fails")
    api_key: str | None = option(None, "require 'Authorization: Bearer KEY' on every endpoint "
                                       "but /health")
    max_body_bytes: int = option(1 << 20, "largest request body in bytes; larger gets 413")
    drain_timeout: float = option(30.0, "on SIGTERM, seconds running requests get to finish")
    watchdog_timeout: float = option(60.0, "/ready answers 503 while one engine step has run "
                                           "longer than this many seconds")
    log_level: str = option("info", f"one of {', '.join(LOG_LEVELS)}")
    generator_group: str = option("primary", "consumer group of the generator")
    classifier_group: str = option("classifier", "consumer group of the classifier")
    embedder_group: str = option("embed", "consumer group of the embedder")
    chat_template: str = option("feedback", "how /v1/chat/completions turns messages into the "
                                            "generator group's input: feedback (system message = "
                                            "context, last user message = the feedback to "
                                            "rewrite) or transcript")
    feedback_app: str = option("auto", "the feedback coach's page and /v1/feedback/*: auto "
                                       "serves them when the server holds a generator and a "
                                       "classifier with the coach's nine labels; on; off")

    def __post_init__(self) -> None:
        if not (self.model or self.classifier or self.embedder or self.config_file):
            raise ValueError("give at least one model: --model DIR, --classifier DIR, --embedder "
                             "DIR, or a manifest with --config FILE")
        if self.config_file and (self.model or self.classifier or self.embedder):
            raise ValueError("--config FILE names the readers: leave out --model, --classifier "
                             "and --embedder")
        for name in ("port", "max_num_seqs", "max_queue", "max_num_batched_tokens",
                     "max_classify_batch", "max_input_len", "max_new_tokens", "max_num_beams",
                     "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{flag(name)} must be at least 1")
        for name in ("queue_timeout", "drain_timeout", "watchdog_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{flag(name)} must be positive")
        for name, choices in (("log_level", LOG_LEVELS), ("chat_template", tuple(CHAT_TEMPLATES)),
                              ("feedback_app", FEEDBACK_APP)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{flag(name)} must be one of {', '.join(choices)}")
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
                raise ValueError(f"{flag(name)} must be between 0 and 65535")
        ports = list(self.listen_ports.values())
        if len(set(ports)) != len(ports):
            raise ValueError(f"the main, management and OpenAI ports must differ (got "
                             f"{self.listen_ports}); set --management-port / --openai-port, or 0 "
                             f"to serve that API on the main port only")


def flag(name: str) -> str:
    """The `takeoff serve` flag of a configuration field."""
    return "--config" if name == "config_file" else "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def add_config_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                         config_type: type = ServerConfig, exclude: Collection[str] = ()) -> None:
    """One flag per field of `config_type` (but those named in `exclude`), its help and default
    from the field; all default to None so that the environment can fill in."""
    for item in fields(config_type):
        if item.name in exclude:
            continue
        shown = item.metadata["shown"] or (None if item.default is None else item.default)
        default = "" if shown is None else f" (default: {shown})"
        metavar = "DIR" if item.name in ("model", "classifier", "embedder") else item.name.upper()
        parser.add_argument(flag(item.name), dest=item.name, type=_parser(config_type, item.name),
                            default=None, metavar=metavar,
                            help=f"{item.metadata['help']}{default} [env {env_name(item.name)}]")


def config_from(args: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                config_type: type = ServerConfig, exclude: Collection[str] = ()):
    """Flags first, then TAKEOFF_* variables, then the defaults. Raises ValueError, one line.
    The fields in `exclude` (a command without their flags) keep their defaults: neither a flag
    nor a variable sets them."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for item in fields(config_type):
        if item.name in exclude:
            continue
        if args.get(item.name) is not None:
            values[item.name] = args[item.name]
        elif environ.get(env_name(item.name)):
            raw, kind = environ[env_name(item.name)], _parser(config_type, item.name)
            try:
                values[item.name] = kind(raw)
            except ValueError:
                raise ValueError(f"{env_name(item.name)}={raw!r} is not a valid "
                                 f"{kind.__name__}") from None
    return config_type(**values)


def _parser(config_type: type, name: str) -> type:
    """What turns a flag's text into the field's value: its type (of `X | None`, X)."""
    kind = typing.get_type_hints(config_type)[name]
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    return kind
