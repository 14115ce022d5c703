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

from scheduler.request import Task
from takeoff.config import ServerConfig
from takeoff.engine.manifest import ReaderSpec
from takeoff.engine.readers import Reader, batch_size, load_reader
from takeoff.errors import ApiError, bad_request

if TYPE_CHECKING:
    from takeoff.engine.engine import Engine

logger = logging.getLogger(__name__)
DRAIN_POLL_S = 0.02

# Memory a reader may take: what the device has free, less this margin for everything else.
HEADROOM = 0.10


async def add_reader(engine: Engine, spec: ReaderSpec) -> Reader:
    """Load a model into a group while serving; it takes requests from the next step on.
    400 bad directory, 409 duplicate, 507 no memory."""
    spec = replace(spec, task=await asyncio.to_thread(task_of, spec))
    reader_id = engine.reader_set.reserve(spec, spec.task)
    spec = replace(spec, reader_id=reader_id)
    try:
        await asyncio.to_thread(check_fits, engine.config, spec)
        reader, runner = await asyncio.to_thread(load_checked, engine.config, spec,
                                                 engine.runner_factory)
    except BaseException:
        engine.reader_set.loading.pop(reader_id, None)
        raise
    lane = engine.lane(reader, runner)
    await engine.between_steps(lambda: engine.core.add_lane(lane))
    engine.reader_set.add(reader)
    logger.info("reader %s loaded: %s %s in group %r", reader_id, reader.info.task.value,
                reader.info.model_path, reader.info.group)
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


def task_of(spec: ReaderSpec) -> Task:
    """What the model directory would do (400 when it holds nothing this server serves)."""
    from kernels.loader import ModelLoadError, model_task

    try:
        return model_task(spec.model_name)
    except ModelLoadError as exc:
        raise bad_request(str(exc), "model_name") from None


def check_fits(config: ServerConfig, spec: ReaderSpec) -> None:
    """507 when the model's weights and (for a generator) its KV cache would not fit in the
    memory the device has free now."""
    from kernels.memory import available_bytes, reader_bytes

    slots = batch_size(config, spec, spec.task) if spec.task.holds_slots else 0
    need = reader_bytes(spec.model_name, config.dtype, spec.device,
                        num_slots=slots, max_len=config.max_new_tokens,
                        max_input_len=spec.max_sequence_length or config.max_input_len)
    free = available_bytes(spec.device)
    if need > free * (1 - HEADROOM):
        raise ApiError(507, f"{spec.model_name} needs about {need / 2**20:.0f} MiB on "
                       f"{spec.device} (weights and KV cache) and {free / 2**20:.0f} MiB are "
                       f"free; remove a reader or lower max_batch_size", "insufficient_memory",
                       "model_name")


def load_checked(config: ServerConfig, spec: ReaderSpec,
                 runner_factory: Callable) -> tuple[Reader, object]:
    """The reader and its runner; 400 naming the problem when the directory cannot be served."""
    from kernels.loader import ModelLoadError

    try:
        reader = load_reader(config, spec)
        return reader, runner_factory(config, reader)
    except ModelLoadError as exc:
        raise bad_request(str(exc), "model_name") from None
