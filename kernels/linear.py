"""How the T5 linears run: plain F.linear, weights prepacked for oneDNN, or int8.

On the CPU, F.linear reorders its weight into oneDNN's blocked layout on every call; a layer
prepacked once runs 1.2-1.4x faster at decode batch sizes (bf16: bit-identical results; fp32:
oneDNN's sgemm instead of MKL's, within 1e-4). With --quantize int8 each call scales every row
of x to int8 on its own (so a sequence's result does not depend on the rest of its batch),
multiplies in int8 with int32 sums (torch._int_mm, VNNI) and scales back to float32, with
weights quantized once per output channel; norms, attention and the residual stream stay
float32. All three are called as linear(x, weight) by kernels/t5.py.
"""
from __future__ import annotations

from dataclasses import fields, replace
from typing import Callable

import torch
import torch.nn.functional as F

from kernels.shapes import MAX_ROWS_PER_CALL, exact_gelu_off_onednn, padded_rows

QUANTIZE_CHOICES = ("none", "int8")
PACKED_DTYPES = (torch.float32, torch.bfloat16)  # oneDNN's CPU kernels for these need no AVX512-FP16
# The weights kernels/t5.py multiplies by (T5Layer fields; T5Weights.lm_head besides).
LINEAR_FIELDS = ("self_qkv", "self_out", "ff_in", "ff_out", "cross_q", "cross_kv", "cross_out")


def linear(x: torch.Tensor, weight) -> torch.Tensor:
    """x @ weight.T for a weight tensor [out, in] (x takes its dtype: float16 T5 keeps `wo` in
    fp32, and its residual stream then continues in fp32, as in Hugging Face), or a prepared
    layer (PackedLinear, Int8Linear)."""
    if isinstance(weight, torch.Tensor):
        return F.linear(x.to(weight.dtype), weight)
    return weight(x)


class PackedLinear:
    """A linear layer whose weight is reordered for oneDNN once, at load. It runs its rows in
    calls of at most MAX_ROWS_PER_CALL, each padded to a kernels.shapes.padded_rows count: each
    new count would compile (and keep) another kernel."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)
        self.bias, self.dtype = bias, weight.dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).to(self.dtype)  # [num_rows, in_features]
        if rows.shape[0] <= MAX_ROWS_PER_CALL:
            out = self._padded(rows)
        else:
            out = torch.cat([self._padded(chunk) for chunk in rows.split(MAX_ROWS_PER_CALL)])
        return out.view(*x.shape[:-1], out.shape[-1])

    def _padded(self, rows: torch.Tensor) -> torch.Tensor:
        num_rows = rows.shape[0]
        if padded_rows(num_rows) != num_rows:
            rows = F.pad(rows, (0, 0, 0, padded_rows(num_rows) - num_rows))
        out = torch.ops.mkldnn._linear_pointwise(rows, self.packed, self.bias, "none", [], "")
        return out[:num_rows]


class Int8Linear:
    """A bias-free linear layer with int8 weights, float32 in and out."""

    def __init__(self, weight: torch.Tensor):
        weight = weight.float()  # [out_features, in_features]
        self.scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12)  # [out_features]
        self.weight_t = (weight / self.scales[:, None]).round().to(torch.int8).t().contiguous()  # [in, out]
        self.out_features = weight.shape[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).float()  # [num_rows, in_features]
        row_scales = (rows.abs().amax(dim=1, keepdim=True) / 127).clamp_(min=1e-12)  # [num_rows, 1]
        quantized = (rows / row_scales).round_().to(torch.int8)
        out = torch._int_mm(quantized, self.weight_t).float().mul_(row_scales).mul_(self.scales)
        return out.view(*x.shape[:-1], self.out_features)


class PackedModuleLinear(torch.nn.Module):
    """An nn.Linear (bias or not) of a Hugging Face module, its weight prepacked for oneDNN: the
    classifier's and the embedder's layers, which otherwise reorder their weights on every call
    (an ELECTRA-small sentence spent most of its time there)."""

    def __init__(self, layer: torch.nn.Linear):
        super().__init__()
        bias = None if layer.bias is None else layer.bias.detach().clone()
        self.linear = PackedLinear(layer.weight.detach(), bias)
        self.out_features = layer.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def prepack_module(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Every nn.Linear of `model` prepacked, where oneDNN runs it (CPU, fp32/bf16), and its exact
    GELUs kept off oneDNN (kernels.shapes); in place."""
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return model
    exact_gelu_off_onednn(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear) and child.weight.dtype in PACKED_DTYPES:
                setattr(parent, name, PackedModuleLinear(child))
    return model


def prepare_linears(w, quantize: str, device: torch.device):
    """T5Weights whose linears run as `quantize` asks (int8), else prepacked where oneDNN can
    (CPU, fp32/bf16 weights), else as they are."""
    if quantize == "int8":
        return _replace_linears(w, Int8Linear)
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and w.embed.dtype in PACKED_DTYPES:
        return _replace_linears(w, lambda weight: PackedLinear(weight) if weight.dtype in PACKED_DTYPES else weight)
    return w


def _replace_linears(w, make: Callable):
    def layer(block):
        return replace(block, **{f.name: make(getattr(block, f.name)) for f in fields(block)
                                 if f.name in LINEAR_FIELDS and getattr(block, f.name) is not None})

    return replace(w, encoder=[layer(b) for b in w.encoder], decoder=[layer(b) for b in w.decoder],
                   lm_head=make(w.lm_head))
