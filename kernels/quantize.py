"""int8 T5 linears for the CPU: weights quantized once per output channel, activations per row.

Each call scales every row of x to int8 on its own (so a sequence's result does not depend on
the rest of its batch), multiplies in int8 with int32 sums (torch._int_mm: oneDNN's VNNI kernels)
and scales back to float32. The norms, attention and residual stream stay float32, the
embedding too. At batch 48 on this CPU the int8 linears run 1.5-2x faster than bf16 ones.
"""
from __future__ import annotations

from dataclasses import fields, replace

import torch

from kernels.t5 import T5Layer, T5Weights

QUANTIZE_CHOICES = ("none", "int8")


class Int8Linear:
    """A bias-free linear layer with int8 weights; call it like F.linear(x, weight)."""

    def __init__(self, weight: torch.Tensor):
        weight = weight.float()  # [out_features, in_features]
        self.scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12)  # [out_features]
        self.weight_t = (weight / self.scales[:, None]).round().to(torch.int8).t().contiguous()  # [in, out]
        self.shape = tuple(weight.shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).float()  # [num_rows, in_features]
        row_scales = (rows.abs().amax(dim=1, keepdim=True) / 127).clamp_(min=1e-12)  # [num_rows, 1]
        quantized = (rows / row_scales).round_().to(torch.int8)
        out = torch._int_mm(quantized, self.weight_t).float().mul_(row_scales).mul_(self.scales)
        return out.view(*x.shape[:-1], self.shape[0])


def quantize_int8(w: T5Weights) -> T5Weights:
    """The same weights with every layer's linears and the lm_head in int8."""
    return replace(w, encoder=[_layer(layer) for layer in w.encoder],
                   decoder=[_layer(layer) for layer in w.decoder], lm_head=Int8Linear(w.lm_head))


def _layer(layer: T5Layer) -> T5Layer:
    linears = ("self_qkv", "self_out", "ff_in", "ff_out", "cross_q", "cross_kv", "cross_out")
    changes = {f.name: Int8Linear(getattr(layer, f.name)) for f in fields(layer)
               if f.name in linears and getattr(layer, f.name) is not None}
    return replace(layer, **changes)
