"""A generator reader's LoRA adapters as the event loop sees them: which names it serves (so that
a request's `lora_id` finds its reader, or a 404), which are being loaded or removed, and what
each adapter is (for /reader_groups and /v1/models).

The adapters' weights live in the reader's runner (kernels/lora.py), which only the engine thread
touches; takeoff/engine/lora_loading.py adds and removes them while the server runs.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from scheduler.request import Task
from takeoff.errors import bad_request


@dataclass(frozen=True)
class LoraInfo:
    """One adapter as the API describes it."""
    lora_id: str
    path: str  # its directory
    rank: int  # r of its adapter_config.json
    alpha: float  # lora_alpha
    target_modules: tuple[str, ...]  # the kinds of linear it adapts (the last part of each name)

    @classmethod
    def of(cls, adapter: Any) -> LoraInfo:
        """From a kernels.lora_adapter.LoraAdapter."""
        kinds = sorted({module.rpartition(".")[2] for module in adapter.modules})
        return cls(adapter.name, str(adapter.path), adapter.rank, adapter.alpha, tuple(kinds))


@dataclass
class ReaderLoras:
    """The adapters of one generator reader, by name."""
    max_loras: int  # resident at once (--max-loras)
    serving: dict[str, LoraInfo] = field(default_factory=dict)  # requests may name these
    loading: set[str] = field(default_factory=set)  # names claimed by adapters being read
    # taking no new requests; each task removes its adapter once its requests have finished
    removing: dict[str, asyncio.Task] = field(default_factory=dict)

    @property
    def num_resident(self) -> int:
        """Adapters that hold (or will hold) a place in the runner."""
        return len(self.serving) + len(self.loading) + len(self.removing)

    def reserve(self, name: str, group_names: set[str]) -> None:
        """Claim `name` for an adapter about to load (400 when the name is taken or the reader
        is full)."""
        if name in self.serving or name in self.loading or name in self.removing:
            raise bad_request(f"this reader already has an adapter named '{name}'", "lora_id")
        if name in group_names:
            raise bad_request(f"'{name}' names a consumer group; an adapter needs another name "
                              f"(the OpenAI API takes both as its model)", "lora_id")
        if self.num_resident >= self.max_loras:
            raise bad_request(f"adapter '{name}': this reader holds {self.num_resident} adapters, "
                              f"the most it may (--max-loras {self.max_loras}); remove one first",
                              "lora_id")
        self.loading.add(name)


def load_adapters(names_and_paths: tuple[tuple[str, str], ...], task: Task, model: Any,
                  max_loras: int) -> list[Any]:
    """The adapters a reader is loaded with (start-up flags, a manifest, POST /reader), read and
    checked against its model (blocking); kernels.lora_adapter.LoraError, naming the adapter
    and the problem, for any that cannot be served."""
    if not names_and_paths:
        return []
    from kernels.lora_adapter import LoraError, load_lora

    if task is not Task.GENERATE:
        raise LoraError(f"LoRA adapters apply to a generator; this model is a {task.value} model")
    names = [name for name, _ in names_and_paths]
    if len(set(names)) != len(names):
        raise LoraError(f"two adapters are named '{next(n for n in names if names.count(n) > 1)}'")
    if len(names) > max_loras:
        raise LoraError(f"{len(names)} adapters, more than --max-loras {max_loras}")
    return [load_lora(name, path, model) for name, path in names_and_paths]
