"""`merged` reads several request streams at once (the OpenAI multi-choice stream): every piece
arrives, each end is marked, and any failure of one reaches the reader as an API error instead of
leaving it waiting."""
from __future__ import annotations

import asyncio

import pytest

from takeoff.errors import ApiError
from takeoff.engine.stream import merged


class Pieces:
    def __init__(self, pieces, failure: BaseException | None = None):
        self.pieces, self.failure = list(pieces), failure

    def __aiter__(self):
        return self

    async def __anext__(self):
        await asyncio.sleep(0)
        if self.pieces:
            return self.pieces.pop(0)
        if self.failure is not None:
            raise self.failure
        raise StopAsyncIteration


async def test_pieces_of_every_choice_arrive_and_each_end_is_marked():
    got = [item async for item in merged([Pieces(["a", "b"]), Pieces(["c"])])]
    assert sorted(got, key=str) == sorted([(0, "a"), (0, "b"), (0, None), (1, "c"), (1, None)],
                                          key=str)


@pytest.mark.parametrize("failure", [ApiError(500, "engine failed", "engine_error"),
                                     RuntimeError("a bug in a stream")])
async def test_any_failure_of_one_choice_reaches_the_reader(failure):
    async def read_all():
        return [item async for item in merged([Pieces(["a"], failure), Pieces(["b"] * 50)])]

    with pytest.raises(ApiError) as caught:
        await asyncio.wait_for(read_all(), timeout=5)
    assert str(failure) in caught.value.message
