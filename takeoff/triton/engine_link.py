"""The one module of `takeoff triton` that talks to the Engine.

PyTriton runs each Triton model instance's callable on an event loop of its own, in a thread of
its own; the Engine belongs to one event loop (its deliveries arrive there). So the Engine gets a
loop and thread of its own here, and every call from a PyTriton loop crosses over: a coroutine
is run on the engine's loop and awaited from the caller's, and a stream's pieces are forwarded
one `call_soon_threadsafe` each. Cancelling the caller's side (PyTriton closing a callable)
cancels the engine's side, which aborts the request as a client that leaves /generate_stream does.

Refusals come back as the Engine raises them (ApiError); a full reader's 429 is reworded to name
the limit it hit, since a Triton client sees no Retry-After header and no documentation link.
"""
from __future__ import annotations

import asyncio
import threading
from typing import AsyncIterator, Callable

from scheduler.sampling_params import SamplingParams
from takeoff.app import build_runner, build_runners
from takeoff.config import ServerConfig
from takeoff.engine import Engine, GenerationStream
from takeoff.errors import ApiError
from takeoff.metrics import Metrics
from takeoff.readers import GENERATE, GroupInfo, Reader

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

    def groups(self) -> dict[str, GroupInfo]:
        return self._run(self._on_loop(self.engine.groups))

    def labels(self, group: str) -> list[str]:
        """A classifier group's label names, in the order of its probabilities."""
        return list(self._first_reader(group).model.labels)

    def embedding_dim(self, group: str) -> int:
        return self._first_reader(group).model.dim

    def _first_reader(self, group: str) -> Reader:
        return next(r for r in self._readers if r.info.name == group)

    def num_slots_in_use(self) -> int:
        return self._run(self._on_loop(self.engine.num_slots_in_use))

    # ---- requests (from any other event loop) ----------------------------------------------
    async def generate(self, text: str, params: SamplingParams, group: str,
                       prompt_max_tokens: int | None) -> AsyncIterator[str]:
        """The text pieces of one generation as they are decoded. Closing this iterator before
        its end aborts the request."""
        caller = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()

        def put(item) -> None:
            caller.call_soon_threadsafe(pieces.put_nowait, item)

        forwarding = await self._call(self._open(text, params, group, prompt_max_tokens, put))
        try:
            while (item := await pieces.get()) is not _END:
                if isinstance(item, ApiError):
                    raise item
                yield item
        finally:
            self._loop.call_soon_threadsafe(forwarding.cancel)

    async def classify(self, texts: list[str], group: str) -> tuple[list[list[float]], list[str]]:
        """One probability row per text, and the label of each column."""
        work = self.engine.classify(texts, group)
        return await self._call(self._reworded_refusal(work, group))

    async def embed(self, texts: list[str], group: str) -> list[list[float]]:
        work = self.engine.embed(texts, group)
        vectors, _ = await self._call(self._reworded_refusal(work, group))
        return vectors

    # ---- on the engine's loop --------------------------------------------------------------
    async def _open(self, text, params, group, prompt_max_tokens, put) -> asyncio.Task:
        try:
            stream = self.engine.generate_stream(text, params, group, prompt_max_tokens)
        except ApiError as exc:
            raise self._reworded(exc, group) from None
        return asyncio.create_task(_forward(stream, put))

    async def _reworded_refusal(self, work, group: str):
        try:
            return await work
        except ApiError as exc:
            raise self._reworded(exc, group) from None

    def _reworded(self, error: ApiError, group: str) -> ApiError:
        if error.status != 429:
            return error
        info = self.engine.groups()[group]
        flag = "--max-num-seqs" if info.task == GENERATE else "--max-classify-batch"
        return ApiError(429, f"consumer group '{group}' is full: each of its readers runs "
                             f"{info.max_batch_size} requests at once ({flag}) and lets "
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


async def _forward(stream: GenerationStream, put: Callable) -> None:
    """Hand each piece, then the end (or the failure), to the caller's loop. Cancelled, the
    stream aborts its request (GenerationStream's own rule)."""
    try:
        async for piece in stream:
            put(piece)
        put(_END)
    except ApiError as exc:
        put(exc)
    finally:
        await stream.aclose()
