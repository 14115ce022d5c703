"""What to load: `ReaderSpec`, from the start-up flags, from a Takeoff-style YAML manifest
(`takeoff serve --config FILE`) or from `POST /reader`, the last two both given as Takeoff's
`ReaderConfig` and checked by the one pydantic model here.

    takeoff:
      readers_config:
        rewriter:                        # the reader's id
          model_name: models/feedback-rewriter
          device: cpu
          consumer_group: primary
          max_batch_size: 32             # optional: KV slots, or inputs per step
          max_sequence_length: 512       # optional: longest input in tokens
        coach-classifier:
          model_name: models/feedback-classifier
          consumer_group: classifier

`readers_config` may also stand at the top level. Takeoff's other reader fields (backend,
quant_type, ...) are accepted and ignored; a field this server does not know is an error.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scheduler.request import Task
from takeoff.config import ServerConfig
from takeoff.errors import validation_error


@dataclass(frozen=True)
class ReaderSpec:
    """What to load: Takeoff's ReaderConfig fields that mean something here."""
    model_name: str  # a local model directory
    consumer_group: str
    device: str = "cpu"
    max_batch_size: int | None = None  # KV slots (generator) or inputs per step; None: the server's
    max_sequence_length: int | None = None  # longest input in tokens; None: the server's
    reader_id: str | None = None  # None: one is made up
    task: Task | None = None  # None: told by its files (kernels.loader.model_task)

    def config(self) -> dict:
        """Takeoff's ReaderConfig shape (GET /config/{reader_id}), unset fields left out."""
        return {k: v for k, v in asdict(self).items()
                if v is not None and k not in ("reader_id", "task")}


class ReaderConfig(BaseModel):
    """Takeoff's ReaderConfig: a reader of a manifest, or the body of POST /reader."""
    model_config = ConfigDict(strict=True, extra="forbid", protected_namespaces=())

    model_name: str = Field(min_length=1, description="a local model directory: a T5-family "
                            "generator, a sequence classifier or a sentence-transformers encoder")
    consumer_group: str = Field(min_length=1)
    device: str | None = Field(None, description="cpu, cuda or cuda:N; default: the server's")
    max_batch_size: int | None = Field(None, ge=1, description="KV slots, or inputs per step")
    max_sequence_length: int | None = Field(None, ge=1, description="longest input in tokens")
    reader_id: str | None = Field(None, min_length=1, description="default: made up")
    # Takeoff's other reader fields: accepted, and ignored by this server.
    redis_host: Any = None
    backend: Any = None
    log_level: Any = None
    cuda_visible_devices: Any = None
    batch_duration_millis: Any = None
    access_token: Any = None
    tensor_parallel: Any = None
    nvlink_unavailable: Any = None
    disable_static: Any = None
    disable_cuda_graph: Any = None
    cuda_graph_cache_capacity: Any = None
    disable_paged_attention: Any = None
    page_cache_size: Any = None
    quant_type: Any = None

    def spec(self, default_device: str) -> ReaderSpec:
        return ReaderSpec(self.model_name, self.consumer_group, self.device or default_device,
                          self.max_batch_size, self.max_sequence_length, self.reader_id)


def startup_specs(config: ServerConfig) -> list[ReaderSpec]:
    """The readers to load at start: the manifest's, or those of --model/--classifier/--embedder."""
    if config.config_file:
        return read_manifest(config.config_file, config)
    specs = []
    for path, group, task in ((config.model, config.generator_group, Task.GENERATE),
                              (config.classifier, config.classifier_group, Task.CLASSIFY),
                              (config.embedder, config.embedder_group, Task.EMBED)):
        if path:
            specs.append(ReaderSpec(path, group, config.device, reader_id=f"{group}-0", task=task))
    return specs


def read_manifest(path: str, config: ServerConfig) -> list[ReaderSpec]:
    """The readers a manifest names, in its order; ValueError with a one-line reason."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"--config {path}: not valid YAML ({exc})") from None
    if not isinstance(document, dict):
        raise ValueError(f"--config {path}: expected a mapping with readers_config")
    readers = (document.get("takeoff") or {}).get("readers_config", document.get("readers_config"))
    if not isinstance(readers, dict) or not readers:
        raise ValueError(f"--config {path}: no readers under takeoff.readers_config")
    specs = []
    for reader_id, fields in readers.items():
        if not isinstance(fields, dict):
            raise ValueError(f"--config {path}: reader {reader_id}: expected a mapping of fields")
        try:
            reader = ReaderConfig.model_validate({**fields, "reader_id": str(reader_id)})
        except ValidationError as exc:
            raise ValueError(f"--config {path}: reader {reader_id}: "
                             f"{validation_error(exc).message}") from None
        specs.append(reader.spec(config.device))
    return specs
