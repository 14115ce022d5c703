"""Per-request LoRA: each row of a batch gets its own adapter's low-rank update on top of the
shared base linears, which are never merged or copied.

A runner holds one `LoraSet`: its resident adapters (at most max_loras), a view of the base
weights in which every field that some adapter touches is a `LoraLinear` around the base's own
linear (a tensor, PackedLinear or Int8Linear), and one `LoraContext`. Before each encoder pass
and each decoder step the runner tells the context which adapter each row uses; every LoraLinear
of that pass reads it (as vLLM's punica wrapper does), so the model kernel calls
linear(x, weight) as ever and knows nothing of adapters. A row's update is its adapter's
x @ down.T @ up.T added to its own output rows; rows of other adapters and of the base model are
not touched, so a request's tokens do not depend on what else is in the batch.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from kernels.linear import linear, linear_shape
from kernels.lora_adapter import FieldUpdate, LoraAdapter, LoraError

DEFAULT_MAX_LORAS = 8


class LoraContext:
    """Which rows of the current pass use which adapter: set once per encoder pass or decoder step."""

    def __init__(self) -> None:
        # (adapter name, its rows: a slice when they are consecutive, else an index tensor [k])
        self.groups: list[tuple[str, slice | torch.Tensor]] = []

    def set(self, lora_ids: list[str | None], device: torch.device) -> None:
        """lora_ids: one per row of the pass (the batch dimension), None for the base model."""
        rows: dict[str, list[int]] = {}
        for row, lora_id in enumerate(lora_ids):
            if lora_id is not None:
                rows.setdefault(lora_id, []).append(row)
        self.groups = [(lora_id, _selector(indices, device)) for lora_id, indices in rows.items()]


def _selector(indices: list[int], device: torch.device) -> slice | torch.Tensor:
    first, last = indices[0], indices[-1]
    if last - first + 1 == len(indices):  # consecutive: a view, no gather or scatter
        return slice(first, last + 1)
    return torch.tensor(indices, device=device)


class LoraLinear:
    """A base linear plus, for each adapter of the pass that touches this field, that adapter's
    update on its own rows. x: [batch, seq, in] (encoder) or [n, in] (decoder step)."""

    def __init__(self, base, updates: dict[str, FieldUpdate], context: LoraContext):
        self.base, self.updates, self.context = base, updates, context
        self.dtype = base.dtype
        self.out_features, self.in_features = linear_shape(base)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = linear(x, self.base)  # [..., out_features]
        for lora_id, rows in self.context.groups:
            update = self.updates.get(lora_id)
            if update is not None:
                _add_update(out, x, rows, update)
        return out


def _add_update(out: torch.Tensor, x: torch.Tensor, rows: slice | torch.Tensor, update: FieldUpdate) -> None:
    """out[rows, ..., start:stop] += linear(linear(x[rows], down), up), in out's own memory. Both
    ways (a slice of rows, gathered rows) compute the same values for a row, whatever the batch."""
    start, stop = update.rows
    if isinstance(rows, slice):
        out[rows][..., start:stop] += linear(linear(x[rows], update.down), update.up)
        return
    delta = linear(linear(x.index_select(0, rows), update.down), update.up)  # [k, ..., stop - start]
    out[..., start:stop].index_add_(0, rows, delta)


class LoraSet:
    """The adapters resident on one runner and the weights that apply them."""

    def __init__(self, base_weights, max_loras: int = DEFAULT_MAX_LORAS):
        if max_loras < 0:
            raise ValueError(f"max_loras must be 0 or more, not {max_loras}")
        self.base, self.max_loras = base_weights, max_loras
        self.adapters: dict[str, LoraAdapter] = {}
        self.context = LoraContext()
        self.weights = base_weights  # the base's own until an adapter is added

    def add(self, adapter: LoraAdapter) -> None:
        if adapter.name in self.adapters:
            raise LoraError(f"an adapter named '{adapter.name}' is already loaded")
        if len(self.adapters) >= self.max_loras:
            raise LoraError(f"adapter '{adapter.name}': {len(self.adapters)} adapters are loaded, "
                            f"the most this reader holds at once (max_loras); remove one first")
        self._check_fits(adapter)
        self.adapters[adapter.name] = adapter
        self.weights = _with_updates(self.base, self.adapters, self.context)

    def remove(self, name: str) -> None:
        if name not in self.adapters:
            raise LoraError(f"no adapter named '{name}' is loaded")
        del self.adapters[name]
        self.weights = _with_updates(self.base, self.adapters, self.context)

    def select(self, lora_ids: list[str | None], device: torch.device) -> None:
        """The adapter of each row of the next pass (the runner checked that each is resident)."""
        self.context.set(lora_ids if self.adapters else [], device)

    def _check_fits(self, adapter: LoraAdapter) -> None:
        """An adapter fitted to another base of other shapes would fail mid-step: refuse it here."""
        for (stack, layer, field), update in adapter.updates.items():
            layers = getattr(self.base, stack, [])
            weight = getattr(layers[layer], field, None) if layer < len(layers) else None
            if weight is None or weight.dtype != update.down.dtype \
                    or linear_shape(weight)[1] != linear_shape(update.down)[1] \
                    or linear_shape(weight)[0] < update.rows[1]:
                raise LoraError(f"adapter '{adapter.name}' was loaded for another base model")


def _with_updates(base, adapters: dict[str, LoraAdapter], context: LoraContext):
    """The base weights with a LoraLinear on every field some adapter updates; the other fields,
    and the base's linears inside the LoraLinears, are the base's own objects."""
    by_layer: dict[tuple[str, int], dict[str, dict[str, FieldUpdate]]] = {}
    for name, adapter in adapters.items():
        for (stack, layer, field), update in adapter.updates.items():
            by_layer.setdefault((stack, layer), {}).setdefault(field, {})[name] = update
    if not by_layer:
        return base
    stacks = {stack: list(getattr(base, stack)) for stack, _ in by_layer}
    for (stack, layer), fields in by_layer.items():
        block = stacks[stack][layer]
        stacks[stack][layer] = replace(block, **{field: LoraLinear(getattr(block, field), updates, context)
                                                 for field, updates in fields.items()})
    return replace(base, **stacks)
