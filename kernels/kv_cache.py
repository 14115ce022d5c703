"""Preallocated self- and cross-attention K/V buffers, one row per running sequence.

The runner maps each scheduler slot to a row and keeps the occupied rows packed at the front
(when a sequence leaves, the last row's sequence moves into its row: one sequence's K/V, never
the whole cache). The cross-attention buffer has a row per request, not per sequence: a beam
search's beams share theirs (kernels/cross_attention.py). Each buffer is one flat reservation viewed as
[num_layers, num_rows, num_heads, capacity, d_kv], where the capacity is the longest occupied
length rounded up to CAPACITY_STEP, not max_len: a step's rows [0, n) are then one contiguous
block, which the attention matmuls read 1.5-3x faster than the strided window of a max_len-wide
buffer (bf16 most: oneDNN first copies a strided operand, transposed). When the longest length
outgrows the capacity, or falls well below it, the occupied rows are laid out again (through a
scratch buffer kept for the next time: fresh memory would page-fault on every copy), at most once
per SELF_CAPACITY_STEP decoder steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from kernels.cross_attention import CrossGroup, attend_cross, cross_groups

# Capacities are multiples of these (or the buffer's max length). A larger step lays the cache
# out again less often but reads more unused positions each step.
SELF_CAPACITY_STEP = 32
CROSS_CAPACITY_STEP = 16


@dataclass
class StepBatch:
    """The sequences of one decoder step, as the tensors every layer indexes the cache with."""
    rows: torch.Tensor  # [n] cache row of each sequence
    row_range: tuple[int, int] | None  # (first, stop) when the rows are consecutive: read by slicing
    positions: torch.Tensor  # [n] position of the token each sequence feeds in this step
    self_bias: torch.Tensor  # [n, num_heads, 1, self capacity]: relative bias, -inf after own position
    cross: list[CrossGroup]  # the sequences grouped by their requests' cross-attention rows


class ElasticKV:
    """K and V of one attention kind (self or cross) for every layer, at an elastic capacity."""

    def __init__(self, num_layers: int, num_rows: int, num_heads: int, d_kv: int, max_len: int,
                 step: int, device, dtype):
        self.shape = (num_layers, num_rows, num_heads, d_kv)
        self.max_len, self.step = max_len, step
        # Reserved, not touched: the OS commits memory when it is first written. Rows in use always
        # hold finite values at every position below the capacity (0 * NaN would be NaN).
        size = num_layers * num_rows * num_heads * max_len * d_kv
        self.k = torch.empty(size, device=device, dtype=dtype)
        self.v = torch.empty(size, device=device, dtype=dtype)
        self.capacity = 0
        self.keys, self.values = self._views(0)  # each [num_layers, num_rows, num_heads, capacity, d_kv]
        self.scratch = torch.empty(0, device=device, dtype=dtype)

    def _views(self, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
        layers, rows, heads, d_kv = self.shape
        size = layers * rows * heads * capacity * d_kv
        return self.k[:size].view(layers, rows, heads, capacity, d_kv), \
            self.v[:size].view(layers, rows, heads, capacity, d_kv)

    def fit(self, length: int, num_used: int, between_layers: Callable[[], None] | None = None) -> None:
        """Make the capacity hold `length` positions of rows [0, num_used), keeping their values.

        One layer at a time through the scratch buffer, calling `between_layers` after each (a
        full relayout of 32 rows took 50 ms, which a waiting classification would otherwise sit
        through). Old and new views share one buffer, so the order matters: growing, layer l's
        new place overlaps only old layers >= l, so the last layer moves first; shrinking, only
        old layers <= l, so the first does."""
        capacity = min(-(-length // self.step) * self.step, self.max_len)
        if not (self.capacity < capacity or capacity + 2 * self.step <= self.capacity):
            return
        layers, _, heads, d_kv = self.shape
        keep = min(capacity, self.capacity)
        size = num_used * heads * keep * d_kv
        if self.scratch.numel() < size:
            self.scratch = torch.empty(size, device=self.k.device, dtype=self.k.dtype)
        saved = self.scratch[:size].view(num_used, heads, keep, d_kv)
        old, new = (self.keys, self.values), self._views(capacity)
        order = range(layers - 1, -1, -1) if capacity > self.capacity else range(layers)
        for layer in order:
            for before, after in zip(old, new):
                saved.copy_(before[layer, :num_used, :, :keep])
                after[layer, :num_used, :, :keep] = saved
                after[layer, :num_used, :, keep:] = 0
            if between_layers is not None:
                between_layers()
        self.keys, self.values = new
        self.capacity = capacity

    def zero(self, row: int) -> None:
        self.keys[:, row] = 0
        self.values[:, row] = 0

    def move(self, source: int, target: int) -> None:
        self.keys[:, target] = self.keys[:, source]
        self.values[:, target] = self.values[:, source]

    def copy_rows(self, sources: list[int], targets: list[int]) -> None:
        """Copy whole rows, every layer, in two ops (the sources are read before any is written)."""
        source = torch.tensor(sources, device=self.k.device)
        target = torch.tensor(targets, device=self.k.device)
        self.keys[:, target] = self.keys[:, source]
        self.values[:, target] = self.values[:, source]

    @property
    def nbytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()


class KVCache:
    def __init__(self, num_layers: int, num_rows: int, num_heads: int, d_kv: int, max_len: int,
                 max_input_len: int, bias_table: torch.Tensor, device, dtype):
        self.num_rows, self.max_len, self.max_input_len = num_rows, max_len, max_input_len
        self.dtype = dtype
        self.self_kv = ElasticKV(num_layers, num_rows, num_heads, d_kv, max_len, SELF_CAPACITY_STEP,
                                 device, dtype)
        self.cross_kv = ElasticKV(num_layers, num_rows, num_heads, d_kv, max_input_len,
                                  CROSS_CAPACITY_STEP, device, dtype)
        self.bias_table = bias_table.to(device=device, dtype=dtype)  # [max_len, num_heads, max_len]

    @property
    def nbytes(self) -> int:
        return self.self_kv.nbytes + self.cross_kv.nbytes

    @property
    def buffers(self) -> tuple[torch.Tensor, ...]:
        """The four flat reservations (self K, self V, cross K, cross V)."""
        return self.self_kv.k, self.self_kv.v, self.cross_kv.k, self.cross_kv.v

    def fit(self, self_len: int, input_len: int, num_used: int,
            between_layers: Callable[[], None] | None = None, num_cross_used: int | None = None) -> None:
        """Capacities for the longest decoder and encoder lengths among self rows [0, num_used)
        and cross rows [0, num_cross_used) (default: as many)."""
        self.self_kv.fit(self_len, num_used, between_layers)
        self.cross_kv.fit(input_len, num_used if num_cross_used is None else num_cross_used, between_layers)

    def write_cross(self, layer: int, rows: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store prefilled cross-attention K/V ([batch, num_heads, seq, d_kv]) in `rows`; positions
        past the capacity are padding (fit() made room for every real input position)."""
        seq = min(keys.shape[2], self.cross_kv.capacity)
        self.cross_kv.keys[layer][rows, :, :seq] = keys[:, :, :seq].to(self.dtype)
        self.cross_kv.values[layer][rows, :, :seq] = values[:, :, :seq].to(self.dtype)

    def step_batch(self, rows: list[int], positions: list[int], input_lens: list[int],
                   cross_rows: list[int] | None = None) -> StepBatch:
        """cross_rows[i]: sequence i's request's cross-attention row (default: rows)."""
        device = self.bias_table.device
        row_tensor = torch.tensor(rows, device=device)
        position_tensor = torch.tensor(positions, device=device)
        first = rows[0]
        consecutive = rows == list(range(first, first + len(rows)))
        self_capacity, cross_capacity = self.self_kv.capacity, self.cross_kv.capacity
        self_bias = self.bias_table.index_select(0, position_tensor)[:, :, None, :self_capacity]
        cross = cross_groups(rows if cross_rows is None else cross_rows, input_lens, cross_capacity,
                             device, self.bias_table.dtype)
        return StepBatch(row_tensor, (first, first + len(rows)) if consecutive else None,
                         position_tensor, self_bias, cross)

    def write_self(self, layer: int, batch: StepBatch, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store this step's K/V ([n, num_heads, d_kv]) at each sequence's own position."""
        self.self_kv.keys[layer][batch.rows, :, batch.positions] = keys.to(self.dtype)
        self.self_kv.values[layer][batch.rows, :, batch.positions] = values.to(self.dtype)

    def read_self(self, layer: int, batch: StepBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """[n, num_heads, self capacity, d_kv] each, contiguous when the rows are consecutive."""
        return _rows(self.self_kv.keys[layer], batch), _rows(self.self_kv.values[layer], batch)

    def attend_cross(self, layer: int, batch: StepBatch, q: torch.Tensor, attend: Callable) -> torch.Tensor:
        """Each sequence's query q [n, num_heads, 1, d_kv] over its request's cross K/V, through
        the family's attend(q, keys, values, bias); [n, num_heads, 1, d_kv]."""
        return attend_cross(q, self.cross_kv.keys[layer], self.cross_kv.values[layer], batch.cross, attend)


def _rows(buffer: torch.Tensor, batch: StepBatch) -> torch.Tensor:
    # buffer: [num_rows, num_heads, capacity, d_kv] -> [n, num_heads, capacity, d_kv]
    if batch.row_range is not None:
        return buffer[batch.row_range[0]:batch.row_range[1]]
    return buffer.index_select(0, batch.rows)
