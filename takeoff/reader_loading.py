"""Loading a reader while the server runs: the memory check first, then the model and its
runner, each failure a clear API error. Blocking: the Engine calls these off the event loop."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from takeoff.config import ServerConfig
from takeoff.errors import ApiError, bad_request
from takeoff.reader_set import ReaderSet
from takeoff.readers import GENERATE, Reader, ReaderSpec, load_reader

# Memory a reader may take: what the device has free, less this margin for everything else.
HEADROOM = 0.10


def check_fits(config: ServerConfig, spec: ReaderSpec, task: str, readers: ReaderSet) -> None:
    """507 when the model's weights and (for a generator) its KV cache would not fit in the
    memory the device has free now."""
    from kernels.memory import available_bytes, reader_bytes

    generates = task == GENERATE
    batch = spec.max_batch_size or (config.max_num_seqs if generates else config.max_classify_batch)
    need = reader_bytes(spec.model_name, config.dtype, spec.device,
                        num_slots=batch if generates else 0, max_len=config.max_new_tokens,
                        max_input_len=spec.max_sequence_length or config.max_input_len)
    free = available_bytes(spec.device)
    if need > free * (1 - HEADROOM):
        raise ApiError(507, f"{spec.model_name} needs about {need / 2**20:.0f} MiB on "
                       f"{spec.device} (weights and KV cache) and {free / 2**20:.0f} MiB are "
                       f"free; remove a reader or lower max_batch_size", "insufficient_memory",
                       "model_name")


def load_checked(config: ServerConfig, spec: ReaderSpec, reader_id: str,
                 runner_factory: Callable) -> tuple[Reader, object]:
    """The reader and its runner; 400 naming the problem when the directory cannot be served."""
    from kernels.loader import ModelLoadError

    try:
        reader = load_reader(config, replace(spec, reader_id=reader_id))
        return reader, runner_factory(config, reader)
    except ModelLoadError as exc:
        raise bad_request(str(exc), "model_name") from None
