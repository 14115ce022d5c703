"""Policies of the scheduler that need no state of their own: the order in which one device's
readers take their turn in a round of EngineCore.step(), and which waiting prompts prefill
together.

Rounds:

Every reader with work gets one step per round, so the device is shared by turns, not by size:
a generator with 60 streams and one with 2 each advance every stream by one token per round.
Readers that hold no KV slots (classifiers, embedders) go first: their work is one short
forward pass that a person is waiting on, and it never delays a stream by more than that pass.
Generators follow in a rotating order, so none is always last. (A classification that arrives
while a generator's step runs does not wait for the round: EngineCore runs it between two
layers of that step.)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, TypeVar

if TYPE_CHECKING:
    from scheduler.request import Request

T = TypeVar("T")


def round_order(slotless: Sequence[T], generators: Sequence[T], round_index: int) -> list[T]:
    """Slot-free readers in their order, then the generators rotated by `round_index`."""
    if not generators:
        return list(slotless)
    start = round_index % len(generators)
    return list(slotless) + list(generators[start:]) + list(generators[:start])


def prefill_group(window: list[Request], num_free: int, budget: int) -> list[Request]:
    """Which of the waiting prompts in `window` (oldest first) prefill together: the oldest, even
    over budget (so nothing starves), then those nearest its length while the padded batch
    (`num_prompts * longest`) fits `budget` and the free slots cover each one's `num_slots` (a
    beam search needs all of its num_beams at once). In arrival order. None while the oldest's
    slots are not all free: nothing overtakes it, so a beam search is not starved by the single
    sequences behind it taking each slot as it frees."""
    head, rest = window[0], window[1:]
    if head.num_slots > num_free:
        return []
    chosen, longest = [head], head.num_prompt_tokens
    num_free -= head.num_slots
    rest = sorted(rest, key=lambda r: abs(r.num_prompt_tokens - head.num_prompt_tokens))
    for request in rest:
        if not num_free:
            break
        padded = max(longest, request.num_prompt_tokens) * (len(chosen) + 1)
        if padded <= budget and request.num_slots <= num_free:
            chosen.append(request)
            num_free -= request.num_slots
            longest = max(longest, request.num_prompt_tokens)
    order = {id(request): i for i, request in enumerate(window)}
    return sorted(chosen, key=lambda r: order[id(r)])
