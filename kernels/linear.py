"""How the encoder-decoder linears run: plain F.linear, weights prepacked for oneDNN, or int8.

On the CPU, F.linear reorders its weight into oneDNN's blocked layout on every call; a layer
prepacked once runs 1.2-1.4x faster at decode batch sizes (bf16: bit-identical results; fp32:
oneDNN's sgemm instead of MKL's, within 1e-4). With --quantize int8 each call scales every row
of x to int8 on its own (so a sequence's result does not depend on the rest of its batch),
multiplies in int8 with int32 sums (torch._int_mm, VNNI) and scales back to float32, with
weights quantized once per output channel; norms, attention and the residual stream stay
float32. All are called as linear(x, weight) by kernels/seq2seq.py, so that another layer
(LoRA-aware, say) can be dropped in; `LinearSource` says where each Hugging Face nn.Linear went.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable

import torch
import torch.nn.functional as F

from kernels.shapes import MAX_ROWS_PER_CALL, exact_gelu_off_onednn, padded_rows

QUANTIZE_CHOICES = ("none", "int8")
PACKED_DTYPES = (torch.float32, torch.bfloat16)  # oneDNN's CPU kernels for these need no AVX512-FP16
# The linears kernels/seq2seq.py multiplies by: Layer fields, and Seq2SeqWeights fields.
LINEAR_FIELDS = ("self_qkv", "self_out", "ff_in", "ff_out", "cross_q", "cross_kv", "cross_out")
MODEL_LINEAR_FIELDS = ("lm_head", "embedding_project", "encoder_project", "head_dense")


@dataclass(frozen=True)
class LinearSource:
    """Where one Hugging Face nn.Linear's weight lives in the regrouped weights."""
    stack: str  # "encoder" or "decoder"
    layer: int  # index in that stack
    field: str  # the layer's field holding it ("self_qkv", "ff_in", ...)
    rows: tuple[int, int]  # its output rows [start, stop) within that field's weight


def linear(x: torch.Tensor, weight) -> torch.Tensor:
    """x @ weight.T (+ bias) for a weight tensor [out, in] or a layer (Dense, PackedLinear,
    Int8Linear, or any callable taking x)."""
    if isinstance(weight, torch.Tensor):
        return F.linear(x.to(weight.dtype), weight)
    return weight(x)


@dataclass
class Dense:
    """A weight [out, in] and its optional bias [out], run by F.linear. x takes the weight's
    dtype: float16 T5 keeps `wo` in fp32, and its residual stream then continues in fp32, as in
    Hugging Face."""
    weight: torch.Tensor
    bias: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.weight.dtype), self.weight, self.bias)

    @property
    def dtype(self) -> torch.dtype:
        return self.weight.dtype


def linear_shape(weight) -> tuple[int, int]:
    """(out_features, in_features) of a weight tensor or a prepared layer."""
    if isinstance(weight, (torch.Tensor, Dense)):
        shape = weight.shape if isinstance(weight, torch.Tensor) else weight.weight.shape
        return shape[0], shape[1]
    return weight.out_features, weight.in_features


class PackedLinear:
    """A linear layer whose weight is reordered for oneDNN once, at load. It runs its rows in
    calls of at most MAX_ROWS_PER_CALL, each padded to a kernels.shapes.padded_rows count: each
    new count would compile (and keep) another kernel."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)
        self.bias, self.dtype = bias, weight.dtype
        self.out_features, self.in_features = weight.shape

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
    """A linear layer with int8 weights (and a float32 bias, if any), float32 in and out."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        weight = weight.float()  # [out_features, in_features]
        self.scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12)  # [out_features]
        self.weight_t = (weight / self.scales[:, None]).round().to(torch.int8).t().contiguous()  # [in, out]
        self.out_features, self.in_features = weight.shape
        self.bias = None if bias is None else bias.float()
        self.dtype = torch.float32  # of what it takes and returns

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).float()  # [num_rows, in_features]
        row_scales = (rows.abs().amax(dim=1, keepdim=True) / 127).clamp_(min=1e-12)  # [num_rows, 1]
        quantized = (rows / row_scales).round_().to(torch.int8)
        out = torch._int_mm(quantized, self.weight_t).float().mul_(row_scales).mul_(self.scales)
        if self.bias is not None:
            out.add_(self.bias)
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
    """Seq2SeqWeights whose Dense linears run as `quantize` asks (int8), else prepacked where
    oneDNN can (CPU, fp32/bf16 weights), else as they are."""
    if quantize == "int8":
        return _replace_linears(w, lambda d: Int8Linear(d.weight, d.bias))
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        return _replace_linears(w, lambda d: PackedLinear(d.weight, d.bias) if d.dtype in PACKED_DTYPES else d)
    return w


def prepacked(weight: torch.Tensor):
    """A PackedLinear of `weight` where oneDNN runs it (a CPU tensor, fp32 or bf16), else the
    tensor. oneDNN's result for a row does not depend on how many rows come with it."""
    if weight.device.type == "cpu" and torch.backends.mkldnn.is_available() and weight.dtype in PACKED_DTYPES:
        return PackedLinear(weight)
    return weight


def _replace_linears(w, make: Callable):
    def prepared(value):
        return make(value) if isinstance(value, Dense) else value

    def layer(block):
        return replace(block, **{f.name: prepared(getattr(block, f.name)) for f in fields(block)
                                 if f.name in LINEAR_FIELDS})

    return replace(w, encoder=[layer(b) for b in w.encoder], decoder=[layer(b) for b in w.decoder],
                   **{name: prepared(getattr(w, name)) for name in MODEL_LINEAR_FIELDS})
