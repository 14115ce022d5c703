"""The API as OpenAPI 3.1: GET /openapi.json is docs/openapi.json (`make openapi` writes it),
describes every route the server has, and holds under schemathesis: on a live server with tiny
models, no generated input gets a 5xx and every answer conforms to the document; afterwards the
server is ready and holds no KV slot."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.request import urlopen

import aiohttp
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, \
    response_schema_conformance, status_code_conformance
from starlette.routing import Route

from scheduler.request import Task

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
# A server whose answers stay short whatever the fuzzer asks: few new tokens, short inputs.
FUZZED = dict(max_new_tokens=8, max_input_len=48, max_num_seqs=4, max_queue=8)
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance]
EXAMPLES = 25  # per operation and mode: the whole run stays near a minute on a 2-core VM
# Every operation but DELETE /reader/{reader_id}, which would take away the readers the others
# need (its refusals are the management tests'), with cases that follow the document, and, for
# one that takes a body, cases that break it.
CASES = [(method, path, mode) for path, item in json.loads(DOCUMENT.read_text())["paths"].items()
         for method, described in item.items() if method != "delete"
         for mode in GenerationMode
         if mode is GenerationMode.POSITIVE or "requestBody" in described]


async def settled(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return condition()


async def get_json(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.status, await response.json()


async def test_the_served_document_is_docs_openapi_json(server_url):
    status, served = await get_json(server_url + "/openapi.json")
    assert status == 200
    assert served == json.loads(DOCUMENT.read_text()), "run `make openapi`"


def test_the_document_describes_every_route_and_only_those(server_factory):
    server = server_factory.server()
    routes = {(method.lower(), route.path) for route in server.app.router.routes
              if isinstance(route, Route) for method in route.methods if method != "HEAD"}
    document = json.loads(DOCUMENT.read_text())
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert routes == described


@pytest.fixture(scope="module")
def fuzzed(server_factory):
    """The server the fuzzer drives, and the document it serves as schemathesis reads it."""
    server = server_factory.server(**FUZZED)
    with urlopen(server.url + "/openapi.json", timeout=30) as answer:
        server.api = schemathesis.openapi.from_dict(json.load(answer))
    server.num_cases = {}
    return server


@pytest.mark.fuzz
@pytest.mark.parametrize("method, path, mode", CASES,
                         ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES])
def test_no_generated_input_breaks_the_server(fuzzed, method, path, mode):
    """Positive cases follow the document; negative ones break it (and must get a 4xx, never a
    5xx). Every answer, of either, conforms to the document."""
    operation = fuzzed.api[path][method.upper()]
    # A made-up reader id is a 404 and no more: name the generator, so its answers are held to
    # the document too.
    reader = {"reader_id": fuzzed.engine.reader_set.pick(None, Task.GENERATE).reader_id}
    strategy = operation.as_strategy(generation_mode=mode,
                                     path_parameters=reader if "{reader_id}" in path else None)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def call(case):
        fuzzed.num_cases[operation.label] = fuzzed.num_cases.get(operation.label, 0) + 1
        case.call_and_validate(base_url=fuzzed.url, checks=CHECKS)

    call()


@pytest.mark.fuzz
async def test_after_the_fuzzing_the_server_is_ready_and_holds_no_slot(fuzzed):
    status, _ = await get_json(fuzzed.url + "/ready")
    assert status == 200
    assert await settled(lambda: fuzzed.engine.snapshot.num_slots_in_use == 0
                         and fuzzed.engine.is_idle)
    print(f"\nschemathesis: {len(fuzzed.num_cases)} operations, "
          f"{sum(fuzzed.num_cases.values())} cases")
