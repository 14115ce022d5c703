"""The asyncio Engine: the one way work gets in (`submit`), per-request streams, readers that come
and go, and the engine thread.

`submit` admits every input of a call on the event loop (a refusal is an immediate ApiError:
429, 413, 404, 400, 503), then hands the requests to the engine thread, which runs
`EngineCore.step()` in a loop and hands each step's results back to the event loop in one call.
The event loop never waits on a model: tokenizing is fast, a grammar compiles in a worker
thread, and the rest only adds, aborts and delivers. A streaming generation gets every text piece
as it is decoded; anything else hears only its end. Nothing here knows Starlette: the HTTP
routes, the feedback app and any other front end call the same `submit`.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Callable, Sequence

from scheduler.request import Request, Task
from scheduler.sampling_params import SamplingParams, SamplingRequest
from scheduler.scheduler import Scheduler, SchedulerConfig
from takeoff.config import ServerConfig
from takeoff.engine.core import CoreSnapshot, EngineCore, EngineOutput, Lane
from takeoff.engine.metrics import Metrics
from takeoff.engine.reader_set import ReaderSet
from takeoff.engine.readers import Reader, ReaderInfo
from takeoff.engine.stream import GenerationResult, RequestStream, Result, engine_error
from takeoff.engine.submission import Submission
from takeoff.engine.thread import EngineThread
from takeoff.errors import ApiError, bad_request, overloaded, unavailable

logger = logging.getLogger(__name__)
Input = str | tuple[str, str]  # a text, or a (text, text_pair) for a classifier


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
        self._streams: dict[str, RequestStream] = {}  # every admitted, unfinished request
        self._ids = itertools.count()
        for reader in readers:
            self.reader_set.add(reader)
            self.core.add_lane(self.lane(reader, runners[reader.reader_id]))
        self.metrics.watch_engine(
            lambda: max(0, len(self._streams) - self.snapshot.num_running),
            lambda: self.snapshot.num_running, lambda: self.snapshot.num_slots_in_use,
            lambda: self.snapshot.num_slots)

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start(asyncio.get_running_loop(), self.deliver)

    @property
    def is_running(self) -> bool:
        return self._thread.is_alive

    @property
    def is_idle(self) -> bool:
        return not self._streams

    @property
    def snapshot(self) -> CoreSnapshot:
        """The core's counts as of the engine thread's last step (gauges, /status, tests)."""
        return self._thread.snapshot

    def seconds_in_step(self) -> float:
        return self.core.seconds_in_step()

    async def stop(self) -> None:
        """Stop the engine thread without blocking the event loop, then answer everyone left."""
        await self._thread.stop(timeout_s=self.config.drain_timeout)
        error = unavailable("the server is shutting down")
        for request_id in list(self._streams):
            self._forget(request_id).put(error)

    # ---- readers --------------------------------------------------------------------------
    async def between_steps(self, command: Callable[[], object]):
        """Run `command` on the engine thread at its next step boundary; its result."""
        if not self.is_running:  # not started (or stopped): nothing else touches the core
            return command()
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def run() -> None:
            try:
                result = command()
            except BaseException as exc:  # noqa: BLE001 - hand it to the caller
                loop.call_soon_threadsafe(_settle, done, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, done, result, None)

        self._thread.send(run, mid_step=False)
        return await done

    def lane(self, reader: Reader, runner) -> Lane:
        scheduler = Scheduler(scheduler_config(self.config, reader.info), decode=reader.decode)
        return Lane(reader.reader_id, scheduler, runner, reader.info.task.holds_slots)

    # ---- submitting -----------------------------------------------------------------------
    def submit(self, task: Task, inputs: Sequence[Input], group: str | None = None,
               sampling: SamplingRequest | None = None, *, stream: bool = False,
               prompt_max_tokens: int | None = None) -> Submission:
        """One request per input, for the least loaded reader of `group` (default: the first
        group that can do `task`), admitted all together or not at all when the Submission is
        awaited or entered. `sampling` (a generation's) is resolved for that reader;
        `stream=True` hands a generation's text over piece by piece; `prompt_max_tokens`
        truncates longer inputs instead of refusing them (413)."""
        return Submission(lambda work: self._admit(work, task, list(inputs), group, sampling,
                                                   stream, prompt_max_tokens))

    async def _admit(self, work: Submission, task: Task, inputs: list[Input], group: str | None,
                     sampling: SamplingRequest | None, stream: bool,
                     prompt_max_tokens: int | None) -> None:
        self._check_accepting()
        reader = self.reader_set.pick(group, task)
        requests = self._requests(reader, task, inputs, sampling, prompt_max_tokens)
        if requests and task is Task.GENERATE:
            await _compile_grammar(reader, requests[0].sampling, sampling or SamplingRequest())
            self._check_accepting()  # the compile awaited: the server may be draining now
            if not self.reader_set.is_serving(reader.reader_id):
                raise unavailable(f"reader '{reader.reader_id}' was removed meanwhile; retry")
        self._check_rows(reader, requests, sampling or SamplingRequest())
        if not self.reader_set.admission[reader.reader_id].try_admit(
                sum(_num_rows(r) for r in requests)):
            raise overloaded(retry_after_s=1)
        work.reader = reader
        work.sampling = requests[0].sampling if requests and task is Task.GENERATE else None
        work.streams = [RequestStream(r.request_id, reader.reader_id, r.num_prompt_tokens,
                                      self.abort, _num_rows(r)) for r in requests]
        self._streams.update((s.request_id, s) for s in work.streams)
        self._thread.send(lambda: [self.core.add(r, reader.reader_id, stream) for r in requests])

    def _requests(self, reader: Reader, task: Task, inputs: list[Input],
                  sampling: SamplingRequest | None, prompt_max_tokens: int | None) -> list[Request]:
        """Tokenized (413 over the reader's limit), sampling resolved (400)."""
        if task is Task.GENERATE:
            params = reader.sampling(sampling or SamplingRequest())
            return [Request(self._next_id(), task, reader.encode(text, prompt_max_tokens), params,
                            eos_token_id=reader.model.eos_token_id) for text in inputs]
        encoded = [reader.encode_pair(*_as_pair(text)) for text in inputs]
        return [Request(self._next_id(), task, ids, token_type_ids=types)
                for ids, types in encoded]

    def _check_rows(self, reader: Reader, requests: list[Request],
                    sampling: SamplingRequest) -> None:
        """400 for beam searches that together need more rows than the reader ever admits (a
        429 would never end)."""
        num_rows = sum(_num_rows(r) for r in requests)
        capacity = self.reader_set.admission[reader.reader_id].capacity
        if num_rows > capacity and num_rows > len(requests):
            raise bad_request(f"{len(requests)} inputs with num_beams {requests[0].num_slots} "
                              f"count as {num_rows} requests; this reader admits at most "
                              f"{capacity} at once", sampling.name("num_beams"))

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
            stream = self._streams.get(output.request_id)
            if stream is None:
                continue  # aborted meanwhile: nobody is listening
            if output.text_delta:
                stream.put(output.text_delta)
            if output.finished:
                self._forget(output.request_id)
                stream.put(_result_or_error(output))

    def _forget(self, request_id: str) -> RequestStream | None:
        stream = self._streams.pop(request_id, None)
        if stream is not None and stream.reader_id in self.reader_set.admission:
            self.reader_set.admission[stream.reader_id].release(stream.num_rows)
        return stream


def scheduler_config(config: ServerConfig, info: ReaderInfo) -> SchedulerConfig:
    """A reader's scheduler: the server's flags, and the reader's own batch size."""
    holds_slots = info.task.holds_slots
    return SchedulerConfig(max_num_seqs=info.max_batch_size if holds_slots else 1,
                           max_num_batched_tokens=config.max_num_batched_tokens,
                           max_classify_batch=info.max_batch_size,
                           queue_timeout_s=config.queue_timeout)


async def _compile_grammar(reader: Reader, params: SamplingParams,
                           sampling: SamplingRequest) -> None:
    """Compile the request's pattern, if it has one, with the reader's compiler, off the event
    loop (the runner then finds it in the compiler's cache); 400 for one that cannot constrain
    this model, naming the client's field."""
    if params.regex is None and params.json_schema is None:
        return
    from kernels.constrained import GrammarError

    try:
        await asyncio.to_thread(reader.grammars.compile, params.regex, params.json_schema)
    except GrammarError as exc:
        raise bad_request(str(exc), sampling.name("regex" if params.regex else "json_schema")) \
            from None


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _num_rows(request: Request) -> int:
    """What a request counts for admission: one, or a beam search's num_beams."""
    return max(1, request.num_slots)


def _result_or_error(output: EngineOutput) -> Result | ApiError:
    if output.error is not None or output.finish_reason in ("aborted", "error"):
        return engine_error(output)
    if output.row is not None:
        return output.row
    sequences = tuple(GenerationResult(s.text, output.num_prompt_tokens, len(s.token_ids),
                                       s.finish_reason, s.score) for s in output.sequences)
    return GenerationResult(output.text, output.num_prompt_tokens, output.num_output_tokens,
                            output.finish_reason, sequences[0].score if sequences else None,
                            sequences)


def _as_pair(text: Input) -> tuple[str, str | None]:
    return (text, None) if isinstance(text, str) else (text[0], text[1])
