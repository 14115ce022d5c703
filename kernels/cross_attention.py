"""Cross-attention over K/V stored once per request, however many sequences the request decodes.

A beam search decodes num_beams sequences against one encoder output, so the cache keeps that
request's cross-attention K/V in one row of KVCache.cross_kv (packed at the front, as the
self-attention rows are), not num_beams copies. A step's sequences are grouped by how many
sequences their request decodes (1, or a beam search's k): m requests of q sequences each are
one batched attention of q queries over m cross rows. Consecutive rows are read as a slice; a
step of single sequences only is one group whose queries are already in order, as before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class CrossGroup:
    """The requests of one step that decode the same number of sequences."""
    num_queries: int  # q: sequences per request
    order: torch.Tensor | None  # [m * q] the step's sequences, request by request; None: all, in order
    rows: torch.Tensor  # [m] each request's cross-attention row
    row_range: tuple[int, int] | None  # (first, stop) when `rows` are consecutive: read by slicing
    mask: torch.Tensor  # [m, 1, 1, cross capacity]: 0 on each request's input, -inf after it


def cross_groups(cross_rows: list[int], input_lens: list[int], capacity: int, device,
                 dtype) -> list[CrossGroup]:
    """Group a step's sequences (cross_rows[i], input_lens[i]: sequence i's request's row and
    input length) by how many of them share a row."""
    sequences_of: dict[int, list[int]] = {}
    for i, row in enumerate(cross_rows):
        sequences_of.setdefault(row, []).append(i)
    rows_of_size: dict[int, list[int]] = {}
    for row, sequences in sequences_of.items():
        rows_of_size.setdefault(len(sequences), []).append(row)
    groups = []
    for size, rows in sorted(rows_of_size.items()):
        rows.sort()
        order = [i for row in rows for i in sequences_of[row]]
        lens = torch.tensor([input_lens[sequences_of[row][0]] for row in rows], device=device)
        padding = torch.arange(capacity, device=device)[None, :] >= lens[:, None]  # [m, capacity]
        mask = torch.zeros(padding.shape, dtype=dtype, device=device).masked_fill(padding, float("-inf"))
        consecutive = rows == list(range(rows[0], rows[0] + len(rows)))
        groups.append(CrossGroup(
            size, None if order == list(range(len(cross_rows))) else torch.tensor(order, device=device),
            torch.tensor(rows, device=device), (rows[0], rows[0] + len(rows)) if consecutive else None,
            mask[:, None, None, :]))
    return groups


def attend_cross(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, groups: list[CrossGroup],
                 attend: Callable) -> torch.Tensor:
    """q [n, heads, 1, d_kv], one query per sequence; keys/values: one layer's cross cache
    [rows, heads, capacity, d_kv]; attend(q, keys, values, bias) the family's attention.
    Returns [n, heads, 1, d_kv]."""
    n, heads, _, d_kv = q.shape
    out = None if len(groups) == 1 and groups[0].order is None else torch.empty_like(q)
    for group in groups:
        size = group.num_queries
        queries = q if group.order is None else q.index_select(0, group.order)
        queries = queries.view(-1, size, heads, d_kv).transpose(1, 2)  # [m, heads, q, d_kv]
        attn = attend(queries, _rows(keys, group), _rows(values, group), group.mask)  # [m, heads, q, d_kv]
        attn = attn.transpose(1, 2).contiguous().view(-1, heads, 1, d_kv)  # [m * q, heads, 1, d_kv]
        if out is None:
            return attn
        if group.order is None:
            out.copy_(attn)
        else:
            out.index_copy_(0, group.order, attn)
    return out


def _rows(buffer: torch.Tensor, group: CrossGroup) -> torch.Tensor:
    # buffer: [rows, heads, capacity, d_kv] -> [m, heads, capacity, d_kv]
    if group.row_range is not None:
        return buffer[group.row_range[0]:group.row_range[1]]
    return buffer.index_select(0, group.rows)
