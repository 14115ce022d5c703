"""The pieces LoRA stands on: `sources` finds every Hugging Face linear in the regrouped weights,
and a LoraLinear adds each row's own adapter update over every kind of base linear."""
from __future__ import annotations

import pytest
import torch
from transformers import T5ForConditionalGeneration

from kernels.linear import Int8Linear, PackedLinear, linear
from kernels.lora import LoraContext, LoraLinear
from kernels.lora_adapter import FieldUpdate
from kernels.t5 import t5_weights


@pytest.mark.parametrize("shape", ["relu-tied", "gated-gelu-untied"])
def test_sources_point_at_each_hugging_face_linear_in_the_regrouped_weights(tiny_t5_shape_dir, shape):
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_shape_dir(shape)).eval()
    weights = t5_weights(model)
    linears = {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    assert set(weights.sources) == set(linears) - {"lm_head"}
    for name, source in weights.sources.items():
        field = getattr(getattr(weights, source.stack)[source.layer], source.field)
        start, stop = source.rows
        assert torch.equal(field[start:stop], linears[name].weight), name
    assert weights.sources["decoder.block.1.layer.1.EncDecAttention.v"].rows == (32, 64)  # k, then v


# (kind, dtype): every base linear a runner may hold
BASE_KINDS = [("tensor", torch.float32), ("tensor", torch.bfloat16), ("packed", torch.float32),
              ("packed", torch.bfloat16), ("int8", torch.float32)]


def make_base(kind: str, weight: torch.Tensor, dtype: torch.dtype):
    if kind == "tensor":
        return weight.to(dtype)
    return PackedLinear(weight.to(dtype)) if kind == "packed" else Int8Linear(weight)


@pytest.mark.parametrize("kind,dtype", BASE_KINDS)
@pytest.mark.parametrize("input_shape", [(7,), (5, 6)])  # a decoder step's rows; an encoder's [batch, seq]
def test_each_row_gets_only_its_own_adapters_update(kind, dtype, input_shape):
    """A fused q/k/v field: adapter "q-v" updates q's and v's rows, "k" only k's; rows of the
    base model, and the fields' rows an adapter does not touch, keep the base linear's output."""
    torch.manual_seed(0)
    inner, d_model, rank = 8, 16, 2
    base = make_base(kind, torch.randn(3 * inner, d_model), dtype)
    a_qv, b_q, b_v = torch.randn(2 * rank, d_model), torch.randn(inner, rank), torch.randn(inner, rank)
    up_qv = torch.zeros(3 * inner, 2 * rank)  # q rows from the first rank block, v from the second
    up_qv[:inner, :rank], up_qv[2 * inner:, rank:] = b_q, b_v
    a_k, b_k = torch.randn(rank, d_model), torch.randn(inner, rank)
    compute = torch.float32 if kind == "int8" else dtype
    updates = {"q-v": FieldUpdate(a_qv.to(compute), up_qv.to(compute), (0, 3 * inner)),
               "k": FieldUpdate(a_k.to(compute), b_k.to(compute), (inner, 2 * inner))}
    context = LoraContext()
    layer = LoraLinear(base, updates, context)
    lora_ids = ["q-v", None, "k", "q-v", "q-v", None, "k"][:input_shape[0]]
    x = torch.randn(*input_shape, d_model).to(compute)
    context.set(lora_ids, x.device)
    out = layer(x)
    plain = linear(x, base)
    for row, lora_id in enumerate(lora_ids):
        expected = plain[row].float().clone()
        if lora_id is not None:
            update = updates[lora_id]
            start, stop = update.rows
            expected[..., start:stop] += x[row].float() @ update.down.float().T @ update.up.float().T
        tolerance = 1e-5 if compute == torch.float32 else 5e-2
        torch.testing.assert_close(out[row].float(), expected, rtol=tolerance, atol=tolerance)
        if lora_id is None:
            assert torch.equal(out[row], plain[row])
    k_rows = slice(inner, 2 * inner)
    assert torch.equal(out[0][..., k_rows], plain[0][..., k_rows])  # "q-v" leaves k alone
    assert not torch.allclose(out[0].float(), plain[0].float())


def test_rows_of_one_adapter_give_the_same_bits_consecutive_or_scattered():
    """A prefill sorts rows by adapter (a slice); a decode step gathers them: same result."""
    torch.manual_seed(1)
    base = PackedLinear(torch.randn(24, 16))
    update = FieldUpdate(PackedLinear(torch.randn(4, 16)), PackedLinear(torch.randn(24, 4)), (0, 24))
    context = LoraContext()
    layer = LoraLinear(base, {"a": update}, context)
    x = torch.randn(4, 16)
    context.set(["a", "a", None, None], x.device)  # rows 0-1: a slice
    consecutive = layer(x)
    context.set(["a", None, "a", None], x.device)  # rows 0 and 2: gathered
    scattered = layer(x[[0, 2, 1, 3]])
    assert torch.equal(consecutive[0], scattered[0]) and torch.equal(consecutive[1], scattered[2])
    assert torch.equal(consecutive[2], scattered[1])  # a base row
