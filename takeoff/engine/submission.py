"""Submission: every input of one call to `Engine.submit`, admitted together, and the one way
their requests are aborted when nobody is left to hear them."""
from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable

from takeoff.engine.stream import RequestStream, Result, merged

if TYPE_CHECKING:
    from scheduler.sampling_params import SamplingParams
    from takeoff.engine.readers import Reader, ReaderInfo


class Submission:
    """The requests of one call: all admitted, or none (the refusal raises, and nothing runs).

    Admission happens when it is awaited (`work = await engine.submit(...)`) or entered
    (`async with engine.submit(...) as work:`). Leaving the `async with`, or `aclose()`, aborts
    whatever has not finished; an SSE response owns the submission it streams and closes it
    however it ends (takeoff/api/sse.py). `streams` follow the order of the inputs.
    """

    def __init__(self, admit: Callable[[Submission], Awaitable[None]]) -> None:
        self._admit = admit
        self._admitted = False
        self.reader: Reader | None = None  # set on admission
        self.sampling: SamplingParams | None = None  # a generation's, resolved on admission
        self.streams: list[RequestStream] = []

    def __await__(self):
        return self._enter().__await__()

    async def __aenter__(self) -> Submission:
        return await self._enter()

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def _enter(self) -> Submission:
        if not self._admitted:
            self._admitted = True
            await self._admit(self)
        return self

    @property
    def info(self) -> ReaderInfo:
        """The reader serving every request of the submission."""
        return self.reader.info

    @property
    def labels(self) -> list[str]:
        """A classifier's label names, in the order of its probability rows."""
        return list(self.reader.model.labels)

    @property
    def num_prompt_tokens(self) -> int:
        return sum(stream.num_prompt_tokens for stream in self.streams)

    async def results(self) -> list[Result]:
        """Each input's result, in order, once all have finished; the first failure raises."""
        return [await stream.finished() for stream in self.streams]

    def pieces(self) -> AsyncIterator[tuple[int, str | None]]:
        """(index, text piece) of every streaming generation as they come, and (index, None)
        when one has ended."""
        return merged(self.streams)

    def close(self) -> None:
        """Abort every request that has not finished. Nothing here waits, so it completes even
        in the `finally` of a cancelled task."""
        for stream in self.streams:
            stream.close()

    async def aclose(self) -> None:
        self.close()
