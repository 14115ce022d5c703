"""Per-request LoRA: each row of a batch gets its own adapter's low-rank update on top of the
shared base linears, which are never merged or copied.

A runner holds one `LoraSet`: its resident adapters (at most max_loras), a view of the base
weights in which every field that some adapter touches is a `LoraLinear` around the base's own
linear (a tensor, PackedLinear or Int8Linear), and one `LoraContext`. Before each encoder pass
and each decoder step the runner tells the context which adapter each row uses; every LoraLinear
of that pass reads it (as vLLM's punica wrapper does), so the model kernel calls
linear(x, weight) as ever and knows nothing of adapters.

Two ways to apply the updates, each where it measured faster (benchmarks/lora_linear.py):
- grouped, for a prefill: each adapter's rows (the runner sorts them into one slice) through
  that adapter's down, then each adapted module's up; thousands of tokens a pass, so no work is
  wasted on other rows.
- stacked, for a decoder step: every resident adapter's downs in one matrix, applied to all
  rows at once, each row keeping only its own adapter's columns of the rank space; then per
  module one up over every adapter's columns. A step has few rows, where small matmuls per
  adapter cost more than the flops this wastes.
Either way a row's result is the same bits whatever else is in the batch: the matmuls are
oneDNN's (prepacked), whose result for a row does not depend on the other rows.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from kernels.linear import linear, linear_shape, prepacked
from kernels.lora_adapter import FieldUpdate, LoraAdapter, LoraError

DEFAULT_MAX_LORAS = 8


class LoraContext:
    """Which rows of the current pass use which adapter: set once per encoder pass or decoder step."""

    def __init__(self) -> None:
        self.present: set[str] = set()  # the adapters some row of this pass uses
        # grouped: (adapter, its rows: a slice when they are consecutive, else an index tensor [k])
        self.groups: list[tuple[str, slice | torch.Tensor]] = []
        self.stacked = False  # this pass (a decoder step with adapter rows) takes the stacked way
        self.row_adapters: torch.Tensor | None = None  # [n] each row's adapter index; -1: the base
        self._masks: dict = {}  # a column layout -> [n, total rank] bool, True where a row does not own it

    def set(self, lora_ids: list[str | None], device: torch.device, index_of: dict[str, int],
            stacked: bool) -> None:
        """lora_ids: one per row of the pass (the batch dimension), None for the base model."""
        self.present = {lora_id for lora_id in lora_ids if lora_id is not None}
        self.stacked, self._masks, self.groups = stacked and bool(self.present), {}, []
        if self.stacked:
            self.row_adapters = torch.tensor([-1 if i is None else index_of[i] for i in lora_ids], device=device)
            return
        rows: dict[str, list[int]] = {}
        for row, lora_id in enumerate(lora_ids):
            if lora_id is not None:
                rows.setdefault(lora_id, []).append(row)
        self.groups = [(lora_id, _selector(indices, device)) for lora_id, indices in rows.items()]

    def foreign_columns(self, layout: tuple, column_adapters: torch.Tensor) -> torch.Tensor:
        """[n, total rank]: True where a column belongs to another adapter than the row's; made
        once per step for each layout of columns (most fields share one)."""
        if layout not in self._masks:
            self._masks[layout] = self.row_adapters[:, None] != column_adapters[None, :]
        return self._masks[layout]


def _selector(indices: list[int], device: torch.device) -> slice | torch.Tensor:
    first, last = indices[0], indices[-1]
    if last - first + 1 == len(indices):  # consecutive: a view, no gather or scatter
        return slice(first, last + 1)
    return torch.tensor(indices, device=device)


class LoraLinear:
    """A base linear plus, for each row whose adapter touches this field, that adapter's update
    on its own output rows. x: [batch, seq, in] (encoder) or [n, in] (decoder step)."""

    def __init__(self, base, updates: dict[str, FieldUpdate], index_of: dict[str, int], context: LoraContext):
        self.base, self.updates, self.index_of, self.context = base, updates, index_of, context
        self.dtype = base.dtype
        self.out_features, self.in_features = linear_shape(base)
        self._grouped: dict[str, tuple] = {}  # adapter -> (down, [(ranks, rows, up)]) prepacked, on first use
        self._stacked: tuple | None = None  # (down, [(ranks, rows, up)], layout, column adapters)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = linear(x, self.base)  # [..., out_features]
        context = self.context
        if context.stacked and not context.present.isdisjoint(self.updates):
            self._add_stacked(out, x)
        elif not context.stacked:
            for lora_id, rows in context.groups:
                if lora_id in self.updates:
                    self._add_grouped(out, x, rows, lora_id)
        return out

    def _add_grouped(self, out: torch.Tensor, x: torch.Tensor, rows: slice | torch.Tensor, lora_id: str) -> None:
        """out[rows, ..., module rows] += each module's up(down(x[rows])), in out's own memory."""
        if lora_id not in self._grouped:
            update = self.updates[lora_id]
            self._grouped[lora_id] = (prepacked(update.down),
                                      [(m.ranks, m.rows, prepacked(m.up)) for m in update.modules])
        down, ups = self._grouped[lora_id]
        picked = x[rows] if isinstance(rows, slice) else x.index_select(0, rows)
        h = linear(picked, down)  # [k, ..., total rank]
        for (first, last), (start, stop), up in ups:
            delta = linear(h[..., first:last], up)  # [k, ..., stop - start]
            if isinstance(rows, slice):
                out[rows][..., start:stop] += delta
            else:
                out[..., start:stop].index_add_(0, rows, delta)

    def _add_stacked(self, out: torch.Tensor, x: torch.Tensor) -> None:
        down, ups, layout, column_adapters = self._stacks()
        h = linear(x, down)  # [n, ..., total rank of every adapter of this field]
        foreign = self.context.foreign_columns(layout, column_adapters)  # [n, total rank]
        h.masked_fill_(foreign.view(foreign.shape[0], *[1] * (h.dim() - 2), -1), 0)
        for (first, last), (start, stop), up in ups:
            out[..., start:stop] += linear(h[..., first:last], up)

    def _stacks(self) -> tuple:
        """Every adapter's down stacked module by module [total rank, in], and per module its
        ups side by side [module rows, that module's rank over every adapter]."""
        if self._stacked is None:
            names = sorted(self.updates, key=self.index_of.__getitem__)
            module_rows = sorted({m.rows for name in names for m in self.updates[name].modules})
            downs, layout, ups = [], [], []
            for rows in module_rows:
                blocks = [(name, self.updates[name], m) for name in names
                          for m in self.updates[name].modules if m.rows == rows]
                first = sum(rank for _, rank in layout)
                for name, update, m in blocks:
                    downs.append(update.down[m.ranks[0]:m.ranks[1]])
                    layout.append((self.index_of[name], m.ranks[1] - m.ranks[0]))
                up = torch.cat([m.up for _, _, m in blocks], dim=1)  # [module rows, its rank over adapters]
                ups.append(((first, first + up.shape[1]), rows, prepacked(up)))
            down = torch.cat(downs)
            column_adapters = torch.tensor([i for i, rank in layout for _ in range(rank)], device=down.device)
            self._stacked = (prepacked(down), ups, tuple(layout), column_adapters)
        return self._stacked


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

    def select(self, lora_ids: list[str | None], device: torch.device, stacked: bool) -> None:
        """The adapter of each row of the next pass (the runner checked that each is resident);
        stacked for a decoder step, grouped for a prefill."""
        index_of = {name: i for i, name in enumerate(self.adapters)}
        self.context.set(lora_ids if self.adapters else [], device, index_of, stacked)

    def _check_fits(self, adapter: LoraAdapter) -> None:
        """An adapter fitted to another base of other shapes would fail mid-step: refuse it here."""
        for (stack, layer, field), update in adapter.updates.items():
            layers = getattr(self.base, stack, [])
            weight = getattr(layers[layer], field, None) if layer < len(layers) else None
            if weight is None or weight.dtype != update.down.dtype or linear_shape(weight)[1] != update.down.shape[1] \
                    or linear_shape(weight)[0] < update.rows[1]:
                raise LoraError(f"adapter '{adapter.name}' was loaded for another base model")


def _with_updates(base, adapters: dict[str, LoraAdapter], context: LoraContext):
    """The base weights with a LoraLinear on every field some adapter updates; the other fields,
    and the base's linears inside the LoraLinears, are the base's own objects."""
    index_of = {name: i for i, name in enumerate(adapters)}
    by_layer: dict[tuple[str, int], dict[str, dict[str, FieldUpdate]]] = {}
    for name, adapter in adapters.items():
        for (stack, layer, field), update in adapter.updates.items():
            by_layer.setdefault((stack, layer), {}).setdefault(field, {})[name] = update
    if not by_layer:
        return base
    stacks = {stack: list(getattr(base, stack)) for stack, _ in by_layer}
    for (stack, layer), fields in by_layer.items():
        block = stacks[stack][layer]
        stacks[stack][layer] = replace(block, **{
            field: LoraLinear(getattr(block, field), updates, index_of, context) for field, updates in fields.items()})
    return replace(base, **stacks)
