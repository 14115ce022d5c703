"""Takeoff's management API: the readers and the server's status, and readers added or removed
while it serves. Served on --management-port (default port + 1) and on the main port."""
from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from scheduler.request import Task
from takeoff.api.http import engine_of, read_json
from takeoff.api.schemas import parse
from takeoff.engine.manifest import ReaderConfig
from takeoff.engine.reader_loading import add_reader, remove_reader
from takeoff.engine.readers import ReaderInfo

# Takeoff's model_type names for what a reader does.
MODEL_TYPES = {Task.GENERATE: "SEQ2SEQ", Task.CLASSIFY: "CLASSIFICATION", Task.EMBED: "EMBEDDING"}


def reader_description(info: ReaderInfo) -> dict:
    """A reader as /reader_groups and /status show it: Takeoff's ReaderInfo fields, then ours."""
    described = {"reader_id": info.reader_id, "consumer_group": info.group,
                 "consumer_groups": [info.group], "consumer_name": info.reader_id,
                 "model_name": info.model_path, "model_type": MODEL_TYPES[info.task],
                 "device": info.device, "pids": [os.getpid()], "task": info.task.value,
                 "dtype": info.dtype, "dtype_reason": info.dtype_reason,
                 "max_input_len": info.max_input_len, "max_batch_size": info.max_batch_size}
    if info.max_new_tokens is not None:
        described["max_new_tokens"] = info.max_new_tokens
    if info.beam_limit is not None:
        described["max_num_beams"] = info.beam_limit[0]
    return described


async def reader_groups(request: Request) -> JSONResponse:
    """Takeoff's shape: {group: [reader, ...]}."""
    groups = engine_of(request).reader_set.by_group()
    return JSONResponse({name: [reader_description(r.info) for r in readers]
                         for name, readers in groups.items()})


async def status(request: Request) -> JSONResponse:
    engine = engine_of(request)
    config = engine.config
    reader_set = engine.reader_set
    live = {rid: reader_description(r.info) for rid, r in reader_set.readers.items()
            if rid not in reader_set.draining}
    draining = {rid: reader_description(reader_set.readers[rid].info)
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
    return JSONResponse(reader_description(reader.info), status_code=201)


async def delete_reader(request: Request) -> JSONResponse:
    reader_id = request.path_params["reader_id"]
    await remove_reader(engine_of(request), reader_id)
    return JSONResponse({"reader_id": reader_id, "removed": True})


def routes() -> list[BaseRoute]:
    return [
        Route("/status", status, methods=["GET"]),
        Route("/reader_groups", reader_groups, methods=["GET"]),
        Route("/config/{reader_id}", reader_config, methods=["GET"]),
        Route("/reader", create_reader, methods=["POST"]),
        Route("/reader/{reader_id}", delete_reader, methods=["DELETE"]),
    ]
