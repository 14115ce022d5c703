"""The asyncio shell around EngineCore: admission, per-request queues, readers that come and go,
and the engine thread.

Requests are tokenized and admitted on the event loop (a refusal is an immediate 4xx/429), then
handed to the engine thread through an inbox; the thread runs `EngineCore.step()` in a loop and
hands each step's results back to the event loop in one call. The event loop never waits on a
model: it only adds, aborts and delivers. A streaming request gets every text piece as it is
decoded (on the engine thread); a non-streaming one hears only its end. Readers are loaded off
the event loop and join the core between two steps; a reader being removed first drains.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Callable

from scheduler.request import Request, RequestKind
from scheduler.sampling_params import SamplingRequest
from scheduler.scheduler import Scheduler, SchedulerConfig
from takeoff.config import ServerConfig
from takeoff.engine.core import EngineCore, EngineOutput, Lane
from takeoff.engine.thread import EngineThread
from takeoff.errors import ApiError, bad_request, overloaded, unavailable
from takeoff.engine.metrics import Metrics
from takeoff.engine.reader_set import ReaderSet, holds_slots
from takeoff.engine.readers import CLASSIFY, EMBED, GENERATE, GroupInfo, Reader
from takeoff.engine.stream import EngineError, GenerationResult, GenerationStream, engine_error

__all__ = ["Engine", "EngineError", "GenerationResult", "GenerationStream", "GroupInfo"]
logger = logging.getLogger(__name__)


class Engine:
    def __init__(self, config: ServerConfig, readers: list[Reader], runners: dict[str, object],
                 metrics: Metrics | None = None, runner_factory: Callable | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.runner_factory = runner_factory  # (config, reader) -> runner, for readers added later
        self.draining = False  # set on SIGTERM: new requests get 503
        self.reader_set = ReaderSet(config.max_queue)
        self.core = EngineCore(self.metrics)
        self._thread = EngineThread(self.core)
        self._sinks: dict[str, tuple[GenerationStream | asyncio.Future, str]] = {}
        self._ids = itertools.count()
        for reader in readers:
            self.reader_set.add(reader)
            self.core.add_lane(self.lane(reader, runners[reader.reader_id]))
        self.metrics.watch_engine(self._num_waiting, self._num_running, self.num_slots_in_use,
                                  self._num_slots)

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start(asyncio.get_running_loop(), self.deliver)

    @property
    def is_running(self) -> bool:
        return self._thread.is_alive

    @property
    def is_idle(self) -> bool:
        return not self._sinks

    def seconds_in_step(self) -> float:
        return self.core.seconds_in_step()

    async def stop(self) -> None:
        """Stop the engine thread without blocking the event loop, then answer everyone left."""
        await self._thread.stop(timeout_s=self.config.drain_timeout)
        error = unavailable("the server is shutting down")
        for request_id in list(self._sinks):
            self._resolve(request_id, error)

    # ---- readers --------------------------------------------------------------------------
    @property
    def readers(self) -> dict[str, Reader]:
        return self.reader_set.readers

    def groups(self) -> dict[str, GroupInfo]:
        return self.reader_set.groups()

    def readers_by_group(self) -> dict[str, list[Reader]]:
        return self.reader_set.by_group()

    def resolve_group(self, name: str | None, task: str | None) -> str:
        return self.reader_set.resolve(name, task)

    def max_inputs(self, group: str | None, task: str) -> int:
        return self.reader_set.max_inputs(group, task)

    async def between_steps(self, command: Callable[[], object]):
        """Run `command` on the engine thread at its next step boundary; its result."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def run() -> None:
            try:
                result = command()
            except BaseException as exc:  # noqa: BLE001 - hand it to the caller
                loop.call_soon_threadsafe(_settle, done, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, done, result, None)

        if not self.is_running:  # not started (or stopped): nothing else touches the core
            run()
        else:
            self._thread.send(run, mid_step=False)
        return await done

    def lane(self, reader: Reader, runner) -> Lane:
        generates = holds_slots(reader)
        scheduler = Scheduler(SchedulerConfig(
            max_num_seqs=reader.info.max_batch_size if generates else 1,
            max_num_batched_tokens=self.config.max_num_batched_tokens,
            max_classify_batch=reader.info.max_batch_size,
            queue_timeout_s=self.config.queue_timeout), decode=reader.decode)
        return Lane(reader.reader_id, scheduler, runner, holds_slots=generates)

    # ---- submitting -----------------------------------------------------------------------
    def tokenize(self, text: str, group: str | None = None) -> tuple[list[str], list[int]]:
        reader = self.reader_set.pick(group, None)
        ids = reader.tokenizer(text, verbose=False)["input_ids"]
        return reader.tokenizer.convert_ids_to_tokens(ids), ids

    def generate_stream(self, prompt: str, sampling: SamplingRequest, group: str | None = None,
                        prompt_max_tokens: int | None = None, *,
                        stream: bool = True) -> GenerationStream:
        """Submit one generation now; refusals (429, 413, 404, 400, 503) raise ApiError here.
        With stream=False the stream yields no pieces, only its result at the end."""
        self._check_accepting()
        reader = self.reader_set.pick(group, GENERATE)
        ids = reader.encode(prompt, prompt_max_tokens)
        request = Request(self._next_id(), RequestKind.GENERATE, ids, reader.sampling(sampling),
                          eos_token_id=reader.model.eos_token_id)
        sink = GenerationStream(request.request_id, request.num_prompt_tokens, self.abort)
        self._submit([request], [sink], reader, stream)
        return sink

    async def generate(self, prompt: str, sampling: SamplingRequest, group: str | None = None,
                       prompt_max_tokens: int | None = None) -> GenerationResult:
        stream = self.generate_stream(prompt, sampling, group, prompt_max_tokens, stream=False)
        try:
            async for _ in stream:
                pass
        finally:
            await stream.aclose()
        return stream.result

    async def classify(self, texts: list[str | tuple[str, str]],
                       group: str | None = None) -> tuple[list[list[float]], list[str]]:
        """One probability row per input, and the label names (in the rows' order)."""
        reader, rows, _ = await self._single_pass(texts, group, CLASSIFY)
        return rows, list(reader.model.labels)

    async def embed(self, texts: list[str],
                    group: str | None = None) -> tuple[list[list[float]], int]:
        """One vector per text, and the number of tokens they took."""
        reader, rows, num_tokens = await self._single_pass(texts, group, EMBED)
        return rows, num_tokens

    async def _single_pass(self, texts: list, group: str | None, task: str):
        self._check_accepting()
        reader = self.reader_set.pick(group, task)
        kind = RequestKind.CLASSIFY if task == CLASSIFY else RequestKind.EMBED
        encoded = [reader.encode_pair(*_as_pair(text)) for text in texts]
        requests = [Request(self._next_id(), kind, ids, token_type_ids=types)
                    for ids, types in encoded]
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in requests]
        self._submit(requests, futures, reader, stream=False)
        try:
            rows = await asyncio.gather(*futures)
        finally:
            for request in requests:
                self.abort(request.request_id)
        return reader, list(rows), sum(len(r.prompt_ids) for r in requests)

    async def compile_grammar(self, sampling: SamplingRequest, group: str | None = None) -> None:
        """Compile the request's pattern, if any, for the group's generators, off the event loop
        (the compilers cache it for their runners); 400 for one that cannot constrain them."""
        from kernels.constrained import GrammarError

        readers = self.reader_set.by_group()[self.reader_set.resolve(group, GENERATE)]
        for reader in readers:
            params = reader.sampling(sampling)
            if params.regex is None and params.json_schema is None:
                continue
            try:
                await asyncio.to_thread(reader.grammars.compile, params.regex, params.json_schema)
            except GrammarError as exc:
                raise bad_request(str(exc), "regex_string" if params.regex else "json_schema") \
                    from None

    def _submit(self, requests: list[Request], sinks: list, reader: Reader, stream: bool) -> None:
        """Admit all of them or none (429), then hand them to the engine thread."""
        if not self.reader_set.admission[reader.reader_id].try_admit(len(requests)):
            raise overloaded(retry_after_s=1)
        for request, sink in zip(requests, sinks):
            self._sinks[request.request_id] = (sink, reader.reader_id)
        self._thread.send(lambda: [self.core.add(r, reader.reader_id, stream) for r in requests])

    def abort(self, request_id: str) -> None:
        """Forget a request in any state; the engine drops it at its next step boundary (or
        between two layers), and its slot is free for the step after."""
        if self._forget(request_id) is not None:
            self._thread.send(lambda: self.core.abort(request_id))

    def _check_accepting(self) -> None:
        if self.draining:
            raise unavailable("the server is shutting down and takes no new requests")
        if not self.is_running:
            raise unavailable("the engine is not running")

    def _next_id(self) -> str:
        return f"req-{next(self._ids)}"

    # ---- delivering (on the event loop, one call per engine step) --------------------------
    def deliver(self, outputs: list[EngineOutput]) -> None:
        for output in outputs:
            entry = self._sinks.get(output.request_id)
            if entry is None:
                continue  # aborted meanwhile: nobody is listening
            sink = entry[0]
            if isinstance(sink, asyncio.Future):
                if output.row is not None and output.error is None:
                    self._forget(output.request_id)
                    sink.set_result(output.row)
                else:
                    self._resolve(output.request_id, engine_error(output))
                continue
            if output.text_delta:
                sink.put(output.text_delta)
            if output.finished:
                self._forget(output.request_id)
                sink.put(_result_or_error(output))

    def _resolve(self, request_id: str, error: ApiError) -> None:
        entry = self._forget(request_id)
        if entry is None:
            return
        sink = entry[0]
        if isinstance(sink, asyncio.Future):
            if not sink.done():
                sink.set_exception(error)
        else:
            sink.put(error)

    def _forget(self, request_id: str):
        entry = self._sinks.pop(request_id, None)
        if entry is not None and entry[1] in self.reader_set.admission:
            self.reader_set.admission[entry[1]].release()
        return entry

    # ---- gauges (read at scrape time, from the event loop) ---------------------------------
    def _num_waiting(self) -> int:
        return max(0, len(self._sinks) - self._num_running())

    def _num_running(self) -> int:
        return sum(lane.scheduler.num_running for lane in list(self.core.lanes.values()))

    def num_slots_in_use(self) -> int:
        lanes = [lane for lane in list(self.core.lanes.values()) if lane.holds_slots]
        return sum(lane.scheduler.config.max_num_seqs - lane.scheduler.num_free_slots
                   for lane in lanes)

    def _num_slots(self) -> int:
        return sum(lane.scheduler.config.max_num_seqs
                   for lane in list(self.core.lanes.values()) if lane.holds_slots)


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _result_or_error(output: EngineOutput) -> GenerationResult | ApiError:
    if output.error is not None or output.finish_reason in ("aborted", "error"):
        return engine_error(output)
    return GenerationResult(output.text, output.num_prompt_tokens, output.num_output_tokens,
                            output.finish_reason)


def _as_pair(text: str | tuple[str, str]) -> tuple[str, str | None]:
    return (text, None) if isinstance(text, str) else (text[0], text[1])
