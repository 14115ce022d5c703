"""KV-slot bookkeeping. A slot is the number a generation holds from its prefill to its end, at
most `num_slots` at once; the runner keeps the sequence's state under it and maps it to a row of
its KV cache (rows stay packed as slots come and go: kernels/runner.py)."""
from __future__ import annotations

import heapq


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
