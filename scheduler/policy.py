"""The order in which one device's readers take their turn in a round of EngineCore.step().

Every reader with work gets one step per round, so the device is shared by turns, not by size:
a generator with 60 streams and one with 2 each advance every stream by one token per round.
Readers that hold no KV slots (classifiers, embedders) go first: their work is one short
forward pass that a person is waiting on, and it never delays a stream by more than that pass.
Generators follow in a rotating order, so none is always last. (A classification that arrives
while a generator's step runs does not wait for the round: EngineCore runs it between two
layers of that step.)
"""
from __future__ import annotations

from typing import Sequence, TypeVar

T = TypeVar("T")


def round_order(slotless: Sequence[T], generators: Sequence[T], round_index: int) -> list[T]:
    """Slot-free readers in their order, then the generators rotated by `round_index`."""
    if not generators:
        return list(slotless)
    start = round_index % len(generators)
    return list(slotless) + list(generators[start:]) + list(generators[:start])
