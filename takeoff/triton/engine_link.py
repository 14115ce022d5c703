"""The one module of `takeoff triton` that talks to the Engine, through `Engine.submit` as every
front end does.

PyTriton runs each Triton model instance's callable on an event loop of its own, in a thread of
its own; the Engine belongs to one event loop (its deliveries arrive there). So the Engine gets a
loop and thread of its own here, and every call from a PyTriton loop crosses over: the work runs
as a task on the engine's loop inside `async with engine.submit(...)`, and a stream's pieces are
forwarded one `call_soon_threadsafe` each. Cancelling the caller's side (PyTriton closing a
callable) cancels that task, and leaving the `async with` aborts the request, as a client that
leaves /generate_stream does.

Refusals come back as the Engine raises them (ApiError); a full reader's 429 is reworded to name
the limit it hit, since a Triton client sees no Retry-After header and no documentation link.
"""
from __future__ import annotations

import asyncio
import threading
from typing import AsyncIterator, Callable

from scheduler.request import Task
from scheduler.sampling_params import SamplingRequest
from takeoff.app import build_runner, build_runners
from takeoff.config import ServerConfig
from takeoff.engine.engine import Engine
from takeoff.engine.metrics import Metrics
from takeoff.engine.readers import Reader, ReaderInfo
from takeoff.errors import ApiError

_END = object()  # a stream's last item, after its pieces


class EngineLink:
    def __init__(self, config: ServerConfig, readers: list[Reader],
                 runner_factory: Callable = build_runner) -> None:
        self.config = config
        self.engine: Engine | None = None
        self._readers = readers
        self._runner_factory = runner_factory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="takeoff engine loop")

    # ---- lifecycle (from a thread without an event loop of ours) ---------------------------
    def start(self) -> None:
        """Build the runners (a generator's reserves its KV cache) and start the engine."""
        self._thread.start()
        self._run(self._start())

    async def _start(self) -> None:
        runners = await asyncio.to_thread(build_runners, self.config, self._readers,
                                          self._runner_factory)
        self.engine = Engine(self.config, self._readers, runners, Metrics(), self._runner_factory)
        self.engine.start()

    def drain(self) -> None:
        """New requests are refused with 503 from now on; running ones go on."""
        if self.engine is not None:
            self._loop.call_soon_threadsafe(setattr, self.engine, "draining", True)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self.engine is not None:
            self._run(self.engine.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def groups(self) -> dict[str, ReaderInfo]:
        """Each consumer group, described by its first reader."""
        return self._run(self._on_loop(self.engine.reader_set.groups))

    def labels(self, group: str) -> list[str]:
        """A classifier group's label names, in the order of its probabilities."""
        return list(next(r for r in self._readers if r.info.group == group).model.labels)

    def num_slots_in_use(self) -> int:
        return self.engine.snapshot.num_slots_in_use  # replaced whole by the engine thread

    # ---- requests (from any other event loop) ----------------------------------------------
    async def generate(self, text: str, sampling: SamplingRequest, group: str,
                       prompt_max_tokens: int | None) -> AsyncIterator[str]:
        """The text pieces of one generation as they are decoded; a refusal raises ApiError.
        Closing this iterator before its end aborts the request."""
        caller = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()

        def put(item) -> None:
            if not caller.is_closed():
                caller.call_soon_threadsafe(pieces.put_nowait, item)

        def ended(future) -> None:  # a failure that is no ApiError must end the wait too
            if not future.cancelled() and future.exception() is not None:
                put(future.exception())

        work = self._submit_stream(text, sampling, group, prompt_max_tokens, put)
        serving = asyncio.run_coroutine_threadsafe(work, self._loop)
        serving.add_done_callback(ended)
        try:
            while (item := await pieces.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            serving.cancel()  # a no-op once it has ended; else the request is aborted

    async def classify(self, texts: list[str], group: str) -> list[list[float]]:
        """One probability row per text, in the order of `labels(group)`."""
        return await self._call(self._one_pass(Task.CLASSIFY, texts, group))

    async def embed(self, texts: list[str], group: str) -> list[list[float]]:
        return await self._call(self._one_pass(Task.EMBED, texts, group))

    # ---- on the engine's loop --------------------------------------------------------------
    async def _submit_stream(self, text: str, sampling: SamplingRequest, group: str,
                             prompt_max_tokens: int | None, put: Callable) -> None:
        """Hand each piece, then the end (or the refusal, or the failure), to the caller's loop.
        Cancelled, the `async with` aborts the request."""
        try:
            async with self.engine.submit(Task.GENERATE, [text], group, sampling, stream=True,
                                          prompt_max_tokens=prompt_max_tokens) as work:
                async for piece in work.streams[0]:
                    put(piece)
            put(_END)
        except ApiError as exc:
            put(self._reworded(exc, group))

    async def _one_pass(self, task: Task, texts: list[str], group: str) -> list[list[float]]:
        try:
            async with self.engine.submit(task, texts, group) as work:
                return await work.results()
        except ApiError as exc:
            raise self._reworded(exc, group) from None

    def _reworded(self, error: ApiError, group: str) -> ApiError:
        if error.status != 429:
            return error
        info = self.engine.reader_set.groups()[group]
        limit = "--max-num-seqs" if info.task.holds_slots else "--max-classify-batch"
        return ApiError(429, f"consumer group '{group}' is full: each of its readers runs "
                             f"{info.max_batch_size} requests at once ({limit}) and lets "
                             f"{self.config.max_queue} more wait (--max-queue); retry shortly",
                        error.type, None, error.headers)

    @staticmethod
    async def _on_loop(function: Callable):
        return function()

    # ---- crossing between loops ------------------------------------------------------------
    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _call(self, coroutine):
        """Await `coroutine` run on the engine's loop; cancelling the caller cancels it there."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._loop))
