"""The engine: one asyncio task drives the scheduler; model steps run on one worker thread.

Each step is schedule -> runner.execute (off the event loop) -> update -> deliver. Delivery puts
each request's new text on its own queue (generation) or resolves its future (classification).
While a step runs on the worker thread, the event loop keeps accepting, aborting and streaming:
requests added meanwhile join at the next step, and aborted ones are skipped by `update`.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from scheduler.output import RunnerOutput, SchedulerOutput
from scheduler.request import Request, RequestKind, RequestStatus
from scheduler.sampling_params import SamplingParams
from scheduler.scheduler import QueueFullError, RequestOutput, Scheduler, SchedulerConfig
from takeoff.config import ServerConfig
from takeoff.errors import ApiError, bad_request, overloaded, unavailable
from takeoff.metrics import Metrics
from takeoff.readers import CLASSIFY, GENERATE, GroupInfo, Reader, resolve_group
from takeoff.stream import EngineError, GenerationResult, GenerationStream

__all__ = ["Engine", "EngineError", "GenerationResult", "GenerationStream", "GroupInfo"]
logger = logging.getLogger(__name__)
IDLE_POLL_S = 0.001  # has_work but nothing schedulable (should not happen): yield, don't spin


class Engine:
    def __init__(self, config: ServerConfig, readers: dict[str, Reader], runner,
                 metrics: Metrics | None = None) -> None:
        self.config = config
        self.readers = readers
        self.runner = runner
        self.metrics = metrics or Metrics()
        generator = self._reader_for(GENERATE)
        self._generator = generator.model if generator else None
        self.scheduler = Scheduler(
            SchedulerConfig(max_num_seqs=config.max_num_seqs,
                            max_num_batched_tokens=config.max_num_batched_tokens,
                            max_classify_batch=config.max_classify_batch,
                            max_queue=config.max_queue, queue_timeout_s=config.queue_timeout),
            decode=self._decode_text)
        self.metrics.watch_scheduler(lambda: self.scheduler.num_waiting,
                                     lambda: self.scheduler.num_running, self._num_slots_in_use,
                                     config.max_num_seqs)
        self.draining = False  # set on SIGTERM: new requests get 503
        self._streams: dict[str, GenerationStream] = {}
        self._classifications: dict[str, asyncio.Future] = {}
        self._ids = itertools.count()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="takeoff-runner")

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="takeoff-engine")

    @property
    def is_running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def is_idle(self) -> bool:
        return not self.scheduler.has_work

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)
        self._fail_all(unavailable("the server is shutting down"))

    def _fail_all(self, error: ApiError) -> None:
        for request_id in list(self._streams) + list(self._classifications):
            self.scheduler.abort(request_id)
            self._resolve_error(request_id, error)

    # ---- groups and tokens ----------------------------------------------------------------
    def groups(self) -> dict[str, GroupInfo]:
        return {name: reader.info for name, reader in self.readers.items()}

    def resolve_group(self, name: str | None, task: str | None) -> str:
        return resolve_group(self.readers, name, task).info.name

    def tokenize(self, text: str, group: str | None = None) -> tuple[list[str], list[int]]:
        reader = resolve_group(self.readers, group, None)
        ids = reader.tokenizer(text, verbose=False)["input_ids"]
        return reader.tokenizer.convert_ids_to_tokens(ids), ids

    def _reader_for(self, task: str) -> Reader | None:
        return next((r for r in self.readers.values() if r.info.task == task), None)

    def _decode_text(self, ids: list[int]) -> str:
        return self._generator.tokenizer.decode(ids, skip_special_tokens=True)

    def _num_slots_in_use(self) -> int:
        return self.config.max_num_seqs - self.scheduler.num_free_slots

    # ---- submitting -----------------------------------------------------------------------
    def generate_stream(self, prompt: str, params: SamplingParams, group: str | None = None,
                        prompt_max_tokens: int | None = None) -> GenerationStream:
        """Submit one generation now; refusals (429, 413, 400, 503) raise ApiError here."""
        self._check_accepting()
        reader = resolve_group(self.readers, group, GENERATE)
        params = self._checked_params(params)
        request = Request(self._next_id(), RequestKind.GENERATE,
                          reader.encode(prompt, prompt_max_tokens), params,
                          eos_token_id=reader.model.eos_token_id)
        self._add(request)
        stream = GenerationStream(request, self.abort)
        self._streams[request.request_id] = stream
        return stream

    async def generate(self, prompt: str, params: SamplingParams, group: str | None = None,
                       prompt_max_tokens: int | None = None) -> GenerationResult:
        stream = self.generate_stream(prompt, params, group, prompt_max_tokens)
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
        reader = resolve_group(self.readers, group, CLASSIFY)
        encoded = [reader.encode_pair(*_as_pair(text)) for text in texts]
        requests = [Request(self._next_id(), RequestKind.CLASSIFY, ids, token_type_ids=types)
                    for ids, types in encoded]
        futures = []
        try:
            for request in requests:
                self._add(request)
                future = asyncio.get_running_loop().create_future()
                self._classifications[request.request_id] = future
                futures.append(future)
            rows = await asyncio.gather(*futures)
        finally:
            for request in requests:
                self.abort(request.request_id)
        return list(rows), list(reader.model.labels)

    def abort(self, request_id: str) -> None:
        """Forget a request in any state; its slot is free for the very next step."""
        self._streams.pop(request_id, None)
        self._classifications.pop(request_id, None)
        if self.scheduler.abort(request_id) is not None:
            self.metrics.finished_requests.labels("aborted").inc()
            self._wakeup.set()

    def _check_accepting(self) -> None:
        if self.draining:
            raise unavailable("the server is shutting down and takes no new requests")
        if not self.is_running:
            raise unavailable("the engine is not running")

    def _checked_params(self, params: SamplingParams) -> SamplingParams:
        try:
            params.validate()
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        if params.max_new_tokens > self.config.max_new_tokens:
            raise bad_request(f"max_new_tokens must be at most {self.config.max_new_tokens}",
                              "max_new_tokens")
        if params.top_k >= self._generator.config.vocab_size:
            params = replace(params, top_k=0)  # the same distribution, no oversized top-k
        return params

    def _add(self, request: Request) -> None:
        try:
            self.scheduler.add(request)
        except QueueFullError:
            raise overloaded(retry_after_s=1) from None
        self._wakeup.set()

    def _next_id(self) -> str:
        return f"req-{next(self._ids)}"

    # ---- the loop -------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._loop()
        except Exception:  # a bug, not a failed step: answer everyone rather than hang them
            logger.exception("the engine loop stopped")
            self._fail_all(EngineError(500, "the engine stopped", "engine_error"))
            raise

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.scheduler.has_work:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            scheduler_output = self.scheduler.schedule()
            for part in _classify_first(scheduler_output):
                for output in await self._step(loop, part):
                    self._deliver(output)
            if scheduler_output.is_empty:
                await asyncio.sleep(IDLE_POLL_S)

    async def _step(self, loop, scheduler_output: SchedulerOutput) -> list[RequestOutput]:
        """Run one (part of a) step and apply it; a failure fails its requests, not the engine."""
        try:
            runner_output = await self._execute(loop, scheduler_output)
            outputs = self.scheduler.update(scheduler_output, runner_output)
        except Exception as exc:
            logger.exception("engine step failed")
            outputs = self.scheduler.fail(self._ids_in(scheduler_output),
                                          f"the model step failed: {exc}")
            return outputs + self.scheduler.update(scheduler_output, RunnerOutput())
        self._observe_step(runner_output)
        return outputs

    async def _execute(self, loop, scheduler_output: SchedulerOutput) -> RunnerOutput:
        if scheduler_output.is_empty and not scheduler_output.freed_slots:
            return RunnerOutput()
        return await loop.run_in_executor(self._executor, self.runner.execute, scheduler_output)

    def _ids_in(self, scheduler_output: SchedulerOutput) -> list[str]:
        ids = [c.request_id for c in scheduler_output.classify]
        ids += [p.request_id for p in scheduler_output.prefill]
        decoding = set(scheduler_output.decode_slots)
        ids += [s.request.request_id for s in self._streams.values() if s.request.slot in decoding]
        return ids

    def _observe_step(self, runner_output: RunnerOutput) -> None:
        for kind, seconds in runner_output.step_seconds.items():
            self.metrics.step_duration.labels(kind).observe(seconds)
        self.metrics.generated_tokens.inc(len(runner_output.next_token_ids))

    # ---- delivering -----------------------------------------------------------------------
    def _deliver(self, output: RequestOutput) -> None:
        request = output.request
        if output.finished:
            self.metrics.finished_requests.labels(request.finish_reason or "unknown").inc()
        if request.kind is RequestKind.CLASSIFY:
            future = self._classifications.pop(request.request_id, None)
            if future is not None and not future.done():
                if request.status is RequestStatus.FINISHED_CLASSIFIED:
                    future.set_result(request.probabilities)
                else:
                    future.set_exception(_engine_error(request))
            return
        stream = self._streams.get(request.request_id)
        if stream is None:
            return
        self._observe_token(stream, request)
        if output.text_delta:
            stream.put(output.text_delta)
        if output.finished:
            del self._streams[request.request_id]
            if request.status in (RequestStatus.FINISHED_ERROR, RequestStatus.FINISHED_ABORTED):
                stream.put(_engine_error(request))
            else:
                stream.put(GenerationResult(request.text, request.num_prompt_tokens,
                                            request.num_output_tokens, request.finish_reason))

    def _observe_token(self, stream: GenerationStream, request: Request) -> None:
        if request.num_output_tokens == stream.num_tokens_seen:
            return
        now = time.monotonic()
        if stream.num_tokens_seen == 0:
            self.metrics.time_to_first_token.observe(request.first_token_time - request.arrival_time)
        else:
            self.metrics.inter_token_latency.observe(now - stream.last_token_time)
        stream.num_tokens_seen = request.num_output_tokens
        stream.last_token_time = now

    def _resolve_error(self, request_id: str, error: ApiError) -> None:
        stream = self._streams.pop(request_id, None)
        if stream is not None:
            stream.put(error)
        future = self._classifications.pop(request_id, None)
        if future is not None and not future.done():
            future.set_exception(error)


def _classify_first(scheduler_output: SchedulerOutput) -> list[SchedulerOutput]:
    """A step with both kinds of work runs as two: classification, answered at once, then the
    generations. A classification then waits for at most the step already running, never for
    the decode of the step it joins."""
    out = scheduler_output
    if not out.classify or not (out.prefill or out.decode_slots):
        return [out]
    return [SchedulerOutput(classify=out.classify, freed_slots=out.freed_slots),
            SchedulerOutput(prefill=out.prefill, decode_slots=out.decode_slots)]


def _engine_error(request: Request) -> EngineError:
    if request.status is RequestStatus.FINISHED_ABORTED:
        return EngineError(503, "the request was cancelled", "service_unavailable")
    if request.first_scheduled_time is None:  # never ran: it timed out in the queue
        return EngineError(503, f"the request waited too long in the queue ({request.error})",
                           "timeout_error", headers={"Retry-After": "1"})
    return EngineError(500, request.error or "the engine failed", "engine_error")


def _as_pair(text: str | tuple[str, str]) -> tuple[str, str | None]:
    return (text, None) if isinstance(text, str) else (text[0], text[1])
