"""Preallocated self- and cross-attention K/V buffers, one row per running sequence.

The runner maps each scheduler slot to a row and keeps the occupied rows packed at the front
(when a sequence leaves, the last row's sequence moves into its row: one sequence's K/V, never
the whole cache). A step then reads rows [0, n) as views, without gathering, and only up to the
longest active length, so its cost grows with neither the free slots nor max_len.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class StepBatch:
    """The sequences of one decoder step, as the tensors every layer indexes the cache with."""
    rows: torch.Tensor  # [n] cache row of each sequence
    row_range: tuple[int, int] | None  # (first, stop) when the rows are consecutive: read by slicing
    positions: torch.Tensor  # [n] position of the token each sequence feeds in this step
    self_bias: torch.Tensor  # [n, num_heads, 1, max_active_len]: relative bias, -inf after own position
    cross_mask: torch.Tensor  # [n, 1, 1, max_active_input_len]: 0 on the input, -inf on its padding
    max_active_len: int
    max_active_input_len: int


class KVCache:
    def __init__(self, num_layers: int, num_rows: int, num_heads: int, d_kv: int, max_len: int,
                 max_input_len: int, bias_table: torch.Tensor, device, dtype):
        self.num_rows, self.max_len, self.max_input_len = num_rows, max_len, max_input_len
        # Reserved, not touched: the OS commits a row's memory when the row is first used, and
        # `claim` zeroes it then (masked positions must hold finite values: 0 * NaN is NaN).
        self_shape = (num_layers, num_rows, num_heads, max_len, d_kv)
        cross_shape = (num_layers, num_rows, num_heads, max_input_len, d_kv)
        self.self_k = torch.empty(self_shape, device=device, dtype=dtype)
        self.self_v = torch.empty(self_shape, device=device, dtype=dtype)
        self.cross_k = torch.empty(cross_shape, device=device, dtype=dtype)
        self.cross_v = torch.empty(cross_shape, device=device, dtype=dtype)
        self.num_clean_rows = 0  # rows [0, num_clean_rows) hold finite values
        self.bias_table = bias_table.to(device=device, dtype=dtype)  # [max_len, num_heads, max_len]

    @property
    def nbytes(self) -> int:
        buffers = (self.self_k, self.self_v, self.cross_k, self.cross_v)
        return sum(b.numel() * b.element_size() for b in buffers)

    def claim(self, row: int) -> None:
        """Make a row ready for a new sequence. Rows are claimed in order 0, 1, 2, ... (the runner
        keeps them packed), so only a row never used before needs zeroing."""
        while self.num_clean_rows <= row:
            for buffer in (self.self_k, self.self_v, self.cross_k, self.cross_v):
                buffer[:, self.num_clean_rows].zero_()
            self.num_clean_rows += 1

    def write_cross(self, layer: int, rows: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store prefilled cross-attention K/V ([batch, num_heads, seq, d_kv]) in `rows`."""
        seq = keys.shape[2]
        self.cross_k[layer][rows, :, :seq] = keys
        self.cross_v[layer][rows, :, :seq] = values

    def move(self, source: int, target: int, self_len: int, input_len: int) -> None:
        """Copy one sequence's K/V (its first self_len / input_len positions) to another row."""
        for buffer, length in ((self.self_k, self_len), (self.self_v, self_len),
                               (self.cross_k, input_len), (self.cross_v, input_len)):
            buffer[:, target, :, :length] = buffer[:, source, :, :length]

    def step_batch(self, rows: list[int], positions: list[int], input_lens: list[int]) -> StepBatch:
        device = self.self_k.device
        row_tensor = torch.tensor(rows, device=device)
        position_tensor = torch.tensor(positions, device=device)
        max_active_len = max(positions) + 1
        max_active_input_len = max(input_lens)
        first = rows[0]
        consecutive = rows == list(range(first, first + len(rows)))
        self_bias = self.bias_table.index_select(0, position_tensor)[:, :, None, :max_active_len]
        lens = torch.tensor(input_lens, device=device)
        padding = torch.arange(max_active_input_len, device=device)[None, :] >= lens[:, None]
        cross_mask = torch.zeros(padding.shape, dtype=self.bias_table.dtype, device=device)
        cross_mask = cross_mask.masked_fill(padding, float("-inf"))[:, None, None, :]
        return StepBatch(row_tensor, (first, first + len(rows)) if consecutive else None,
                         position_tensor, self_bias, cross_mask, max_active_len, max_active_input_len)

    def write_self(self, layer: int, batch: StepBatch, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store this step's K/V ([n, num_heads, d_kv]) at each sequence's own position."""
        self.self_k[layer][batch.rows, :, batch.positions] = keys
        self.self_v[layer][batch.rows, :, batch.positions] = values

    def read_self(self, layer: int, batch: StepBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return (self._gather(self.self_k[layer], batch, batch.max_active_len),
                self._gather(self.self_v[layer], batch, batch.max_active_len))

    def read_cross(self, layer: int, batch: StepBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return (self._gather(self.cross_k[layer], batch, batch.max_active_input_len),
                self._gather(self.cross_v[layer], batch, batch.max_active_input_len))

    @staticmethod
    def _gather(buffer: torch.Tensor, batch: StepBatch, length: int) -> torch.Tensor:
        # buffer: [num_rows, num_heads, capacity, d_kv] -> [n, num_heads, length, d_kv]
        if batch.row_range is not None:
            return buffer[batch.row_range[0]:batch.row_range[1], :, :length]
        return buffer[:, :, :length].index_select(0, batch.rows)
