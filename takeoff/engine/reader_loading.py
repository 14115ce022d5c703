"""Readers that come and go while the server runs. Adding one: the directory's kind, the memory
check, then the model and its runner, loaded off the event loop, each failure a clear API error;
the reader joins the engine core between two steps. Removing one: no new requests go to it, its
requests finish (up to drain_timeout), then it leaves the core and its memory is freed."""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from takeoff.config import ServerConfig
from takeoff.errors import ApiError, bad_request
from takeoff.engine.reader_set import ReaderSet
from takeoff.engine.manifest import ReaderSpec
from takeoff.engine.readers import GENERATE, TASK_OF_KIND, Reader, load_reader

if TYPE_CHECKING:
    from takeoff.engine.engine import Engine

logger = logging.getLogger(__name__)
DRAIN_POLL_S = 0.02

# Memory a reader may take: what the device has free, less this margin for everything else.
HEADROOM = 0.10


async def add_reader(engine: Engine, spec: ReaderSpec) -> Reader:
    """Load a model into a group while serving; it takes requests from the next step on.
    400 bad directory, 409 duplicate, 507 no memory."""
    task = await asyncio.to_thread(task_of, spec)
    reader_id = engine.reader_set.reserve(spec, task)
    try:
        await asyncio.to_thread(check_fits, engine.config, spec, task, engine.reader_set)
        reader, runner = await asyncio.to_thread(load_checked, engine.config, spec, reader_id,
                                                 engine.runner_factory)
    except BaseException:
        engine.reader_set.loading.pop(reader_id, None)
        raise
    lane = engine.lane(reader, runner)
    await engine.between_steps(lambda: engine.core.add_lane(lane))
    engine.reader_set.add(reader)
    logger.info("reader %s loaded: %s %s in group %r", reader_id, reader.info.task,
                reader.info.model_path, reader.info.name)
    return reader


async def remove_reader(engine: Engine, reader_id: str) -> None:
    """Stop routing requests to the reader, let its requests finish (up to drain_timeout), then
    drop it and free its memory; what is still running then is aborted."""
    reader_set = engine.reader_set
    reader_set.get(reader_id)  # 404 unknown
    reader_set.draining.add(reader_id)
    deadline = time.monotonic() + engine.config.drain_timeout
    while reader_set.admission[reader_id].num_unfinished and time.monotonic() < deadline:
        await asyncio.sleep(DRAIN_POLL_S)
    aborted = await engine.between_steps(lambda: engine.core.remove_lane(reader_id))
    engine.deliver(aborted)
    reader_set.remove(reader_id)
    gc.collect()
    logger.info("reader %s removed", reader_id)


def task_of(spec: ReaderSpec) -> str:
    """What the model directory would do (400 when it holds nothing this server serves)."""
    from kernels.loader import ModelLoadError, model_kind

    try:
        return TASK_OF_KIND[model_kind(spec.model_name)]
    except ModelLoadError as exc:
        raise bad_request(str(exc), "model_name") from None


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
