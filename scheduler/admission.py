"""Admission: whether a new request may enter at all, decided the moment it arrives.

A reader can run `num_running_max` requests at once (its KV slots, or its classification batch)
and let `max_queue` more wait. A request is admitted while fewer than `num_running_max +
max_queue` of the reader's requests are unfinished, so an idle reader takes exactly that many of
a burst, however the burst and the engine's steps interleave: the count changes only when the
edge admits a request and when it hears that one has finished, never with the engine's timing.
"""
from __future__ import annotations


class Admission:
    def __init__(self, num_running_max: int, max_queue: int) -> None:
        if num_running_max < 1 or max_queue < 0:
            raise ValueError("num_running_max must be at least 1 and max_queue at least 0")
        self.capacity = num_running_max + max_queue
        self.num_unfinished = 0

    @property
    def num_free(self) -> int:
        return self.capacity - self.num_unfinished

    def try_admit(self, num_requests: int = 1) -> bool:
        """Admit all `num_requests` together, or none of them."""
        if num_requests > self.num_free:
            return False
        self.num_unfinished += num_requests
        return True

    def release(self, num_requests: int = 1) -> None:
        if num_requests > self.num_unfinished:
            raise ValueError("released more requests than were admitted")
        self.num_unfinished -= num_requests
