"""The asyncio shell around EngineCore: admission, per-request queues, and the engine thread.

Requests are tokenized and admitted on the event loop (a refusal is an immediate 4xx/429), then
handed to the engine thread through an inbox; the thread runs `EngineCore.step()` in a loop and
hands each step's results back to the event loop in one call. The event loop never waits on a
model: it only adds, aborts and delivers. A streaming request gets every text piece as it is
decoded (on the engine thread); a non-streaming one hears only its end.
"""
from __future__ import annotations

import asyncio
import itertools
import logging

from scheduler.admission import Admission
from scheduler.request import Request, RequestKind
from scheduler.sampling_params import SamplingParams
from scheduler.scheduler import Scheduler, SchedulerConfig
from takeoff.config import ServerConfig
from takeoff.core import EngineCore, EngineOutput, Lane
from takeoff.engine_thread import EngineThread
from takeoff.errors import ApiError, overloaded, unavailable
from takeoff.metrics import Metrics
from takeoff.readers import CLASSIFY, GENERATE, GroupInfo, Reader, resolve_group
from takeoff.stream import EngineError, GenerationResult, GenerationStream, engine_error

__all__ = ["Engine", "EngineError", "GenerationResult", "GenerationStream", "GroupInfo"]
logger = logging.getLogger(__name__)


class Engine:
    def __init__(self, config: ServerConfig, readers: list[Reader], runners: dict[str, object],
                 metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.draining = False  # set on SIGTERM: new requests get 503
        self.readers: dict[str, Reader] = {}
        self._admission: dict[str, Admission] = {}
        self.core = EngineCore(self.metrics)
        for reader in readers:
            self._add_reader(reader, runners[reader.reader_id])
        self._sinks: dict[str, tuple[GenerationStream | asyncio.Future, str]] = {}
        self._ids = itertools.count()
        self._thread = EngineThread(self.core)
        self.metrics.watch_engine(self._num_waiting, self._num_running, self.num_slots_in_use,
                                  self._num_slots)

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start(asyncio.get_running_loop(), self._deliver)

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

    # ---- groups and tokens ----------------------------------------------------------------
    def groups(self) -> dict[str, GroupInfo]:
        """Each consumer group, described by its first reader."""
        return {name: readers[0].info for name, readers in self.readers_by_group().items()}

    def readers_by_group(self) -> dict[str, list[Reader]]:
        groups: dict[str, list[Reader]] = {}
        for reader in self.readers.values():
            groups.setdefault(reader.info.name, []).append(reader)
        return groups

    def resolve_group(self, name: str | None, task: str | None) -> str:
        return resolve_group(self.readers_by_group(), name, task)

    def tokenize(self, text: str, group: str | None = None) -> tuple[list[str], list[int]]:
        reader = self._pick(group, None)
        ids = reader.tokenizer(text, verbose=False)["input_ids"]
        return reader.tokenizer.convert_ids_to_tokens(ids), ids

    def max_inputs(self, group: str | None, task: str) -> int:
        """The most requests one call may submit to the group: what it can ever admit."""
        readers = self.readers_by_group()[self.resolve_group(group, task)]
        return max(self._admission[r.reader_id].capacity for r in readers)

    def _pick(self, group: str | None, task: str | None) -> Reader:
        """The least-loaded reader of the group."""
        readers = self.readers_by_group()[self.resolve_group(group, task)]
        return min(readers, key=lambda r: self._admission[r.reader_id].num_unfinished)

    def _add_reader(self, reader: Reader, runner) -> None:
        info = reader.info
        generates = info.task == GENERATE
        scheduler = Scheduler(SchedulerConfig(
            max_num_seqs=self.config.max_num_seqs if generates else 1,
            max_num_batched_tokens=self.config.max_num_batched_tokens,
            max_classify_batch=self.config.max_classify_batch,
            queue_timeout_s=self.config.queue_timeout), decode=reader.decode)
        self.readers[reader.reader_id] = reader
        self._admission[reader.reader_id] = Admission(info.max_batch_size, self.config.max_queue)
        self.core.add_lane(Lane(reader.reader_id, scheduler, runner, holds_slots=generates))

    # ---- submitting -----------------------------------------------------------------------
    def generate_stream(self, prompt: str, params: SamplingParams, group: str | None = None,
                        prompt_max_tokens: int | None = None, *,
                        stream: bool = True) -> GenerationStream:
        """Submit one generation now; refusals (429, 413, 404, 503) raise ApiError here.
        With stream=False the stream yields no pieces, only its result at the end."""
        self._check_accepting()
        reader = self._pick(group, GENERATE)
        ids = reader.encode(prompt, prompt_max_tokens)
        request = Request(self._next_id(), RequestKind.GENERATE, ids, params,
                          eos_token_id=reader.model.eos_token_id)
        sink = GenerationStream(request.request_id, request.num_prompt_tokens, self.abort)
        self._submit([request], [sink], reader, stream)
        return sink

    async def generate(self, prompt: str, params: SamplingParams, group: str | None = None,
                       prompt_max_tokens: int | None = None) -> GenerationResult:
        stream = self.generate_stream(prompt, params, group, prompt_max_tokens, stream=False)
        try:
            async for _ in stream:
                pass
        finally:
            await stream.aclose()
        return stream.result

    async def classify(self, texts: list[str | tuple[str, str]],
                       group: str | None = None) -> tuple[list[list[float]], list[str]]:
        """One probability row per input, and the label names (in the rows' order)."""
        self._check_accepting()
        reader = self._pick(group, CLASSIFY)
        encoded = [reader.encode_pair(*_as_pair(text)) for text in texts]
        requests = [Request(self._next_id(), RequestKind.CLASSIFY, ids, token_type_ids=types)
                    for ids, types in encoded]
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in requests]
        self._submit(requests, futures, reader, stream=False)
        try:
            rows = await asyncio.gather(*futures)
        finally:
            for request in requests:
                self.abort(request.request_id)
        return list(rows), list(reader.model.labels)

    def _submit(self, requests: list[Request], sinks: list, reader: Reader, stream: bool) -> None:
        """Admit all of them or none (429), then hand them to the engine thread."""
        if not self._admission[reader.reader_id].try_admit(len(requests)):
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
    def _deliver(self, outputs: list[EngineOutput]) -> None:
        for output in outputs:
            entry = self._sinks.get(output.request_id)
            if entry is None:
                continue  # aborted meanwhile: nobody is listening
            sink = entry[0]
            if isinstance(sink, asyncio.Future):
                if output.probabilities is not None and output.error is None:
                    self._forget(output.request_id)
                    sink.set_result(output.probabilities)
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
        if entry is not None:
            self._admission[entry[1]].release()
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


def _result_or_error(output: EngineOutput) -> GenerationResult | ApiError:
    if output.error is not None or output.finish_reason in ("aborted", "error"):
        return engine_error(output)
    return GenerationResult(output.text, output.num_prompt_tokens, output.num_output_tokens,
                            output.finish_reason)


def _as_pair(text: str | tuple[str, str]) -> tuple[str, str | None]:
    return (text, None) if isinstance(text, str) else (text[0], text[1])
