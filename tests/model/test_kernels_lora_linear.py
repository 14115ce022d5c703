"""A LoraLinear adds each row's own adapter update over every kind of base linear (that `sources`
finds every Hugging Face linear in the regrouped weights: tests/model/test_family_loading.py)."""
from __future__ import annotations

import pytest
import torch

from kernels.linear import Dense, Int8Linear, PackedLinear, linear
from kernels.lora import LoraContext, LoraLinear
from kernels.lora_adapter import FieldUpdate, ModuleUpdate


# (kind, dtype): every base linear a runner may hold
BASE_KINDS = [("tensor", torch.float32), ("tensor", torch.bfloat16), ("packed", torch.float32),
              ("packed", torch.bfloat16), ("int8", torch.float32), ("dense", torch.float32),
              ("packed-bias", torch.float32), ("int8-bias", torch.float32)]
WAYS = ["grouped", "stacked"]  # a prefill's way, a decoder step's way


def make_base(kind: str, weight: torch.Tensor, dtype: torch.dtype):
    """A linear of `kind`; the -bias kinds and a Dense carry a bias (BART's linears have one)."""
    bias = torch.randn(weight.shape[0]).to(dtype) if kind.endswith("bias") or kind == "dense" else None
    if kind == "tensor":
        return weight.to(dtype)
    if kind == "dense":
        return Dense(weight.to(dtype), bias)
    return PackedLinear(weight.to(dtype), bias) if kind.startswith("packed") else Int8Linear(weight, bias)


def fused_qkv_layer(base, compute: torch.dtype, inner: int = 8, d_model: int = 16, rank: int = 2):
    """A fused q/k/v field: adapter "q-v" updates q's and v's rows, "k" (of another rank) only k's."""
    def module(ranks, rows):
        return ModuleUpdate(ranks, rows, torch.randn(rows[1] - rows[0], ranks[1] - ranks[0]).to(compute))

    q_v = FieldUpdate(torch.randn(2 * rank, d_model).to(compute),
                      (module((0, rank), (0, inner)), module((rank, 2 * rank), (2 * inner, 3 * inner))))
    k = FieldUpdate(torch.randn(rank + 1, d_model).to(compute), (module((0, rank + 1), (inner, 2 * inner)),))
    updates = {"q-v": q_v, "k": k}
    context = LoraContext()
    return LoraLinear(base, updates, {"q-v": 0, "k": 1}, context), context


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("kind,dtype", BASE_KINDS)
@pytest.mark.parametrize("input_shape", [(7,), (5, 6)])  # a decoder step's rows; an encoder's [batch, seq]
def test_each_row_gets_only_its_own_adapters_update(kind, dtype, input_shape, way):
    """Rows of the base model, and the field's rows an adapter does not touch, keep the base
    linear's output; every other row gains its own adapter's update."""
    torch.manual_seed(0)
    inner, d_model = 8, 16
    base = make_base(kind, torch.randn(3 * inner, d_model), dtype)
    compute = torch.float32 if kind.startswith("int8") else dtype
    layer, context = fused_qkv_layer(base, compute)
    lora_ids = ["q-v", None, "k", "q-v", "q-v", None, "k"][:input_shape[0]]
    x = torch.randn(*input_shape, d_model).to(compute)
    context.set(lora_ids, x.device, layer.index_of, stacked=way == "stacked")
    out, plain = layer(x), linear(x, base)
    tolerance = 1e-5 if compute == torch.float32 else 5e-2
    for row, lora_id in enumerate(lora_ids):
        expected = plain[row].float().clone()
        if lora_id is not None:
            update = layer.updates[lora_id]
            for (first, last), (start, stop), up in ((m.ranks, m.rows, m.up) for m in update.modules):
                expected[..., start:stop] += x[row].float() @ update.down[first:last].float().T @ up.float().T
        torch.testing.assert_close(out[row].float(), expected, rtol=tolerance, atol=tolerance)
        if lora_id is None:
            assert torch.equal(out[row], plain[row])
    k_rows = slice(inner, 2 * inner)
    assert torch.equal(out[0][..., k_rows], plain[0][..., k_rows])  # "q-v" leaves k alone
    assert not torch.allclose(out[0].float(), plain[0].float())


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_row_gets_the_same_bits_alone_as_in_any_batch(dtype, way):
    """What the engine's batch independence rests on: consecutive rows (a sorted prefill),
    scattered rows (a decoder step) and a row alone give the same bits."""
    torch.manual_seed(1)
    layer, context = fused_qkv_layer(PackedLinear(torch.randn(24, 16).to(dtype)), dtype)
    x = torch.randn(6, 16).to(dtype)
    lora_ids = ["q-v", "q-v", "k", None, "k", "q-v"]
    context.set(lora_ids, x.device, layer.index_of, stacked=way == "stacked")
    together = layer(x)
    order = [2, 0, 5, 3, 1, 4]
    context.set([lora_ids[i] for i in order], x.device, layer.index_of, stacked=way == "stacked")
    shuffled = layer(x[order])
    for row, lora_id in enumerate(lora_ids):
        context.set([lora_id], x.device, layer.index_of, stacked=way == "stacked")
        assert torch.equal(layer(x[row:row + 1])[0], together[row]), row
        assert torch.equal(shuffled[order.index(row)], together[row]), row
