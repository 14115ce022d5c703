"""What to load: `ReaderSpec`, from the start-up flags, from a Takeoff-style YAML manifest
(`takeoff serve --config FILE`) or from `POST /reader`.

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
quant_type, ...) are accepted and ignored; a field this server cannot honour is an error.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from takeoff.config import ServerConfig

REQUIRED = ("model_name", "consumer_group")
IGNORED = ("redis_host", "backend", "log_level", "cuda_visible_devices", "batch_duration_millis",
           "access_token", "tensor_parallel", "nvlink_unavailable", "disable_static",
           "disable_cuda_graph", "cuda_graph_cache_capacity", "disable_paged_attention",
           "page_cache_size", "quant_type")


@dataclass(frozen=True)
class ReaderSpec:
    """What to load: Takeoff's ReaderConfig fields that mean something here."""
    model_name: str  # a local model directory
    consumer_group: str
    device: str = "cpu"
    max_batch_size: int | None = None  # KV slots (generator) or inputs per step; None: the server's
    max_sequence_length: int | None = None  # longest input in tokens; None: the server's
    reader_id: str | None = None  # None: one is made up
    kind: str | None = None  # "generator", "classifier", "embedder"; None: told by its files

    def config(self) -> dict:
        """Takeoff's ReaderConfig shape (GET /config/{reader_id}), unset fields left out."""
        return {k: v for k, v in asdict(self).items()
                if v is not None and k not in ("reader_id", "kind")}


def startup_specs(config: ServerConfig) -> list[ReaderSpec]:
    """The readers to load at start: the manifest's, or those of --model/--classifier/--embedder."""
    if config.config_file:
        return read_manifest(config.config_file, config)
    specs = []
    for path, group, kind in ((config.model, config.generator_group, "generator"),
                              (config.classifier, config.classifier_group, "classifier"),
                              (config.embedder, config.embedder_group, "embedder")):
        if path:
            specs.append(ReaderSpec(path, group, config.device, reader_id=f"{group}-0", kind=kind))
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
    return [reader_spec(reader_id, fields, config.device, f"--config {path}: reader {reader_id}")
            for reader_id, fields in readers.items()]


def reader_spec(reader_id: str | None, fields: dict, default_device: str, where: str) -> ReaderSpec:
    """A ReaderSpec from Takeoff's ReaderConfig fields (the manifest's or POST /reader's)."""
    if not isinstance(fields, dict):
        raise ValueError(f"{where}: expected a mapping of reader fields")
    missing = [name for name in REQUIRED if not fields.get(name)]
    if missing:
        raise ValueError(f"{where}: {', '.join(missing)} is required")
    known = set(REQUIRED) | {"device", "max_batch_size", "max_sequence_length"} | set(IGNORED)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for name in ("max_batch_size", "max_sequence_length"):
        value = fields.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 1):
            raise ValueError(f"{where}: {name} must be a positive integer")
    return ReaderSpec(model_name=str(fields["model_name"]),
                      consumer_group=str(fields["consumer_group"]),
                      device=str(fields.get("device") or default_device),
                      max_batch_size=fields.get("max_batch_size"),
                      max_sequence_length=fields.get("max_sequence_length"),
                      reader_id=None if reader_id is None else str(reader_id))
