"""Takeoff's management API: the readers and the server's status, and readers and LoRA adapters
added or removed while it serves. Served on --management-port (default port + 1) and on the main
port."""
from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from scheduler.request import Task
from takeoff.api.http import engine_of, read_json
from takeoff.api.management_schemas import LoraBody
from takeoff.api.schemas import parse
from takeoff.engine.lora_loading import add_lora, remove_lora
from takeoff.engine.loras import LoraInfo
from takeoff.engine.manifest import ReaderConfig
from takeoff.engine.reader_loading import add_reader, remove_reader
from takeoff.engine.readers import Reader

# Takeoff's model_type names for what a reader does.
MODEL_TYPES = {Task.GENERATE: "SEQ2SEQ", Task.CLASSIFY: "CLASSIFICATION", Task.EMBED: "EMBEDDING"}


def reader_description(reader: Reader) -> dict:
    """A reader as /reader_groups and /status show it: Takeoff's ReaderInfo fields, then ours."""
    info = reader.info
    described = {"reader_id": info.reader_id, "consumer_group": info.group,
                 "consumer_groups": [info.group], "consumer_name": info.reader_id,
                 "model_name": info.model_path, "model_type": MODEL_TYPES[info.task],
                 "device": info.device, "pids": [os.getpid()], "task": info.task.value,
                 "dtype": info.dtype, "dtype_reason": info.dtype_reason,
                 "max_input_len": info.max_input_len, "max_batch_size": info.max_batch_size}
    if info.max_new_tokens is not None:
        described["max_new_tokens"] = info.max_new_tokens
    if reader.loras is not None:
        described["loras"] = [lora_description(a) for a in reader.loras.serving.values()]
        described["max_loras"] = reader.loras.max_loras
    if info.beam_limit is not None:
        described["max_num_beams"] = info.beam_limit[0]
    if info.task is Task.GENERATE:
        described["sampling_defaults"] = defaults_in_force(reader)
    return described


def lora_description(info: LoraInfo) -> dict:
    return {"lora_id": info.lora_id, "path": info.path, "r": info.rank,
            "lora_alpha": info.alpha, "target_modules": list(info.target_modules)}


def defaults_in_force(reader: Reader) -> dict:
    """The reader's own sampling defaults as a request meets them: lowered to its caps."""
    defaults = dict(reader.sampling_defaults)
    caps = {"max_new_tokens": reader.info.max_new_tokens,
            "num_beams": reader.info.beam_limit[0] if reader.info.beam_limit else None}
    for name, cap in caps.items():
        if name in defaults and cap is not None:
            defaults[name] = min(defaults[name], cap)
    return defaults


async def reader_groups(request: Request) -> JSONResponse:
    """Takeoff's shape: {group: [reader, ...]}."""
    groups = engine_of(request).reader_set.by_group()
    return JSONResponse({name: [reader_description(r) for r in readers]
                         for name, readers in groups.items()})


async def status(request: Request) -> JSONResponse:
    engine = engine_of(request)
    config = engine.config
    reader_set = engine.reader_set
    live = {rid: reader_description(r) for rid, r in reader_set.readers.items()
            if rid not in reader_set.draining}
    draining = {rid: reader_description(reader_set.readers[rid])
                for rid in reader_set.draining if rid in reader_set.readers}
    loading = {rid: {"consumer_groups": [spec.consumer_group], "model_name": spec.model_name,
                     "device": spec.device} for rid, spec in reader_set.loading.items()}
    ports = config.listen_ports
    return JSONResponse({
        "config": {"port": config.port, "management_port": ports.get("management", config.port),
                   "openai_port": ports.get("openai", config.port),
                   "max_batch_size": config.max_num_seqs, "max_queue": config.max_queue},
        "status": {"live_readers": live, "loading_readers": loading, "draining_readers": draining,
                   "dead_readers": {}, "ready": engine.is_running and not engine.draining}})


async def reader_config(request: Request) -> JSONResponse:
    reader = engine_of(request).reader_set.get(request.path_params["reader_id"])
    return JSONResponse(reader.spec.config() if reader.spec else {})


async def create_reader(request: Request) -> JSONResponse:
    """Load a model directory as a new reader of a consumer group; answers when it serves."""
    body = parse(ReaderConfig, await read_json(request))
    engine = engine_of(request)
    reader = await add_reader(engine, body.spec(engine.config.device))
    return JSONResponse(reader_description(reader), status_code=201)


async def delete_reader(request: Request) -> JSONResponse:
    reader_id = request.path_params["reader_id"]
    await remove_reader(engine_of(request), reader_id)
    return JSONResponse({"reader_id": reader_id, "removed": True})


async def create_lora(request: Request) -> JSONResponse:
    """Load a LoRA adapter onto a generator reader; answers once requests may name it."""
    body = parse(LoraBody, await read_json(request))
    info = await add_lora(engine_of(request), request.path_params["reader_id"], body.lora_id,
                          body.path)
    return JSONResponse(lora_description(info), status_code=201)


async def delete_lora(request: Request) -> JSONResponse:
    """Refuse new requests for the adapter at once; answers once those it had have finished
    and it is gone."""
    reader_id, lora_id = request.path_params["reader_id"], request.path_params["lora_id"]
    await remove_lora(engine_of(request), reader_id, lora_id)
    return JSONResponse({"reader_id": reader_id, "lora_id": lora_id, "removed": True})


def routes() -> list[BaseRoute]:
    return [
        Route("/status", status, methods=["GET"]),
        Route("/reader_groups", reader_groups, methods=["GET"]),
        Route("/config/{reader_id}", reader_config, methods=["GET"]),
        Route("/reader", create_reader, methods=["POST"]),
        Route("/reader/{reader_id}", delete_reader, methods=["DELETE"]),
        Route("/reader/{reader_id}/lora", create_lora, methods=["POST"]),
        Route("/reader/{reader_id}/lora/{lora_id}", delete_lora, methods=["DELETE"]),
    ]
