"""KV-slot bookkeeping. A slot is the number a generation holds from its prefill to its end, at
most `num_slots` at once; the runner keeps the sequence's state under it and maps it to a row of
its KV cache (rows stay packed as slots come and go: kernels/runner.py)."""
from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scheduler.request import Request


class SlotPool:
    """A free list of `num_slots` integers. The lowest free slot is handed out first, so reuse
    is predictable."""

    def __init__(self, num_slots: int) -> None:
        if num_slots < 1:
            raise ValueError("num_slots must be at least 1")
        self.num_slots = num_slots
        self._free = list(range(num_slots))  # a heap; already sorted, so already a heap
        self._in_use: set[int] = set()

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_used(self) -> int:
        return len(self._in_use)

    def allocate(self) -> int:
        if not self._free:
            raise RuntimeError("no free KV slot")
        slot = heapq.heappop(self._free)
        self._in_use.add(slot)
        return slot

    def free(self, slot: int) -> None:
        if slot not in self._in_use:
            raise ValueError(f"slot {slot} is not in use")
        self._in_use.remove(slot)
        heapq.heappush(self._free, slot)


class RunningTable:
    """The running generations and the KV slots they hold (one each; a beam search num_beams),
    kept in step: who holds which slot, in join order, and which slots were freed since the last
    `take_freed`."""

    def __init__(self, num_slots: int) -> None:
        self.pool = SlotPool(num_slots)
        self.requests: dict[str, Request] = {}  # by request id, in join order
        self.owner: dict[int, Request] = {}  # slot -> the request holding it
        self._freed: list[int] = []

    def admit(self, request: Request) -> None:
        """Hand the request its `num_slots` slots (the caller has checked they are free)."""
        request.slots = [self.pool.allocate() for _ in range(request.num_slots)]
        self.owner.update((slot, request) for slot in request.slots)
        self.requests[request.request_id] = request

    def release(self, request: Request) -> None:
        """Free every slot the request holds, if it holds any."""
        if self.requests.pop(request.request_id, None) is None:
            return
        for slot in request.slots:
            del self.owner[slot]
            self.pool.free(slot)
            self._freed.append(slot)

    @property
    def has_freed(self) -> bool:
        return bool(self._freed)

    def take_freed(self) -> list[int]:
        freed, self._freed = self._freed, []
        return freed
