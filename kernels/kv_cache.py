"""Preallocated self- and cross-attention K/V buffers addressed by integer slots.

A sequence owns one slot from prefill until it leaves; joining or leaving touches only that
slot's rows. A step reads only the active slots, and only up to the longest active length, so
its cost does not grow with the number of free slots or with max_len.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class StepBatch:
    """The sequences of one decoder step, as the tensors every layer indexes the cache with."""
    slots: torch.Tensor  # [n] slot of each sequence
    slot_range: tuple[int, int] | None  # (first, stop) when the slots are consecutive: read by slicing
    positions: torch.Tensor  # [n] position of the token each sequence feeds in this step
    self_bias: torch.Tensor  # [n, num_heads, 1, max_active_len]: relative bias, -inf after own position
    cross_mask: torch.Tensor  # [n, 1, 1, max_active_input_len]: 0 on the input, -inf on its padding
    max_active_len: int
    max_active_input_len: int


class KVCache:
    def __init__(self, num_layers: int, num_slots: int, num_heads: int, d_kv: int, max_len: int,
                 max_input_len: int, bias_table: torch.Tensor, device, dtype):
        self.num_slots, self.max_len, self.max_input_len = num_slots, max_len, max_input_len
        # Zero-filled once: rows past a sequence's length are masked, and zeros keep them finite.
        self_shape = (num_layers, num_slots, num_heads, max_len, d_kv)
        cross_shape = (num_layers, num_slots, num_heads, max_input_len, d_kv)
        self.self_k = torch.zeros(self_shape, device=device, dtype=dtype)
        self.self_v = torch.zeros(self_shape, device=device, dtype=dtype)
        self.cross_k = torch.zeros(cross_shape, device=device, dtype=dtype)
        self.cross_v = torch.zeros(cross_shape, device=device, dtype=dtype)
        self.bias_table = bias_table.to(device=device, dtype=dtype)  # [max_len, num_heads, max_len]

    @property
    def nbytes(self) -> int:
        buffers = (self.self_k, self.self_v, self.cross_k, self.cross_v)
        return sum(b.numel() * b.element_size() for b in buffers)

    def write_cross(self, layer: int, slots: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store prefilled cross-attention K/V ([batch, num_heads, seq, d_kv]) in `slots`."""
        seq = keys.shape[2]
        self.cross_k[layer][slots, :, :seq] = keys
        self.cross_v[layer][slots, :, :seq] = values

    def step_batch(self, slots: list[int], positions: list[int], input_lens: list[int]) -> StepBatch:
        device = self.self_k.device
        slot_tensor = torch.tensor(slots, device=device)
        position_tensor = torch.tensor(positions, device=device)
        max_active_len = max(positions) + 1
        max_active_input_len = max(input_lens)
        first = slots[0]
        consecutive = slots == list(range(first, first + len(slots)))
        self_bias = self.bias_table.index_select(0, position_tensor)[:, :, None, :max_active_len]
        lens = torch.tensor(input_lens, device=device)
        padding = torch.arange(max_active_input_len, device=device)[None, :] >= lens[:, None]
        cross_mask = torch.zeros(padding.shape, dtype=self.bias_table.dtype, device=device)
        cross_mask = cross_mask.masked_fill(padding, float("-inf"))[:, None, None, :]
        return StepBatch(slot_tensor, (first, first + len(slots)) if consecutive else None,
                         position_tensor, self_bias, cross_mask, max_active_len, max_active_input_len)

    def write_self(self, layer: int, batch: StepBatch, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store this step's K/V ([n, num_heads, d_kv]) at each sequence's own position."""
        self.self_k[layer][batch.slots, :, batch.positions] = keys
        self.self_v[layer][batch.slots, :, batch.positions] = values

    def read_self(self, layer: int, batch: StepBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return (self._gather(self.self_k[layer], batch, batch.max_active_len),
                self._gather(self.self_v[layer], batch, batch.max_active_len))

    def read_cross(self, layer: int, batch: StepBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return (self._gather(self.cross_k[layer], batch, batch.max_active_input_len),
                self._gather(self.cross_v[layer], batch, batch.max_active_input_len))

    @staticmethod
    def _gather(buffer: torch.Tensor, batch: StepBatch, length: int) -> torch.Tensor:
        # buffer: [num_slots, num_heads, capacity, d_kv] -> [n, num_heads, length, d_kv]
        if batch.slot_range is not None:
            return buffer[batch.slot_range[0]:batch.slot_range[1], :, :length]
        return buffer[:, :, :length].index_select(0, batch.slots)
