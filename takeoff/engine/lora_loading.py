"""LoRA adapters that come and go while the server runs.

Adding one: the name is claimed (400 taken, or the reader full), the directory read and checked
against the reader's model off the event loop (kernels.lora_adapter.load_lora: 400 naming the
problem), then the runner takes it between two steps; requests may name it from then on.
Removing one: no new request may name it at once (404), and once every request that named it has
finished the runner drops it between two steps. Neither disturbs the reader's other requests.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from takeoff.engine.loras import LoraInfo, ReaderLoras
from takeoff.engine.readers import Reader
from takeoff.errors import bad_request, not_found, unavailable

if TYPE_CHECKING:
    from takeoff.engine.engine import Engine

logger = logging.getLogger(__name__)
POLL_S = 0.02


def loras_of(reader: Reader) -> ReaderLoras:
    """The reader's adapters (400 when it is not a generator)."""
    if reader.loras is None:
        raise bad_request(f"reader '{reader.reader_id}' serves {reader.info.task.value} "
                          f"requests; LoRA adapters apply to a generator", "reader_id")
    return reader.loras


async def add_lora(engine: Engine, reader_id: str, name: str, path: str) -> LoraInfo:
    """Load the adapter in directory `path` onto a generator reader as `name`; it serves from
    the next step on. 404 unknown reader; 400 a taken name, a full reader or a bad adapter."""
    from kernels.lora_adapter import LoraError, load_lora

    reader = engine.reader_set.get(reader_id)
    loras = loras_of(reader)
    loras.reserve(name, set(engine.reader_set.by_group()))
    try:
        try:
            adapter = await asyncio.to_thread(load_lora, name, path, reader.model)
        except LoraError as exc:
            raise bad_request(str(exc), "path") from None
        if not engine.reader_set.is_serving(reader_id):
            raise unavailable(f"reader '{reader_id}' was removed meanwhile")
        await engine.between_steps(lambda: engine.core.lanes[reader_id].runner.add_lora(adapter))
    finally:
        loras.loading.discard(name)
    info = loras.serving[name] = LoraInfo.of(adapter)
    logger.info("adapter %s loaded on reader %s from %s", name, reader_id, info.path)
    return info


async def remove_lora(engine: Engine, reader_id: str, name: str) -> None:
    """Stop admitting requests that name the adapter, wait until those it has finish, then drop
    it from the runner. 404 when the reader has no such adapter (or is removing it already)."""
    loras = loras_of(engine.reader_set.get(reader_id))
    if name in loras.removing:
        raise not_found(f"adapter '{name}' of reader '{reader_id}' is being removed already",
                        "lora_id")
    if loras.serving.pop(name, None) is None:
        raise not_found(f"reader '{reader_id}' has no adapter named '{name}'; GET /reader_groups "
                        f"lists them", "lora_id")
    # A task of its own, so that a client that leaves does not stop the removal half-way.
    task = loras.removing[name] = asyncio.create_task(_drain_and_drop(engine, reader_id, name))
    task.add_done_callback(lambda _: loras.removing.pop(name, None))
    await asyncio.shield(task)


async def _drain_and_drop(engine: Engine, reader_id: str, name: str) -> None:
    while engine.num_unfinished(reader_id, name):
        await asyncio.sleep(POLL_S)
    while not await engine.between_steps(lambda: _drop(engine, reader_id, name)):
        await asyncio.sleep(POLL_S)
    logger.info("adapter %s removed from reader %s", name, reader_id)


def _drop(engine: Engine, reader_id: str, name: str) -> bool:
    """On the engine thread: drop the adapter unless a sequence still holds it (a finished
    sequence's slot is let go by the reader's next step, which the core runs for it)."""
    lane = engine.core.lanes.get(reader_id)
    if lane is None:
        return True  # the reader itself was removed, and its adapters with it
    if lane.runner.lora_users(name):
        return False
    lane.runner.remove_lora(name)
    return True
