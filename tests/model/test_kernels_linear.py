"""int8 linears: close to float32, independent of the batch, and what the loader accepts."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernels.loader import ModelLoadError, load_generator
from kernels.linear import Int8Linear
from tests.model.test_kernels_devices import agreement, engine_greedy, seeded_prompts

MIN_INT8_AGREEMENT = 0.5  # the tiny model is far more sensitive than a real one (see the report)


def test_int8_linear_is_close_and_each_row_ignores_the_others():
    torch.manual_seed(0)
    weight, x = torch.randn(96, 64), torch.randn(10, 64) * 3
    x[0] *= 100  # one large row must not coarsen the others' quantization
    layer = Int8Linear(weight)
    exact, out = F.linear(x, weight), layer(x)
    assert out.shape == exact.shape
    assert ((out - exact).norm(dim=1) / exact.norm(dim=1)).max() < 0.02
    assert all(torch.equal(layer(x[i:i + 1])[0], out[i]) for i in range(10))
    assert layer(x.view(2, 5, 64)).shape == (2, 5, 96)


def test_int8_generator_agrees_with_float32(decisive_t5_dir):
    reference = load_generator(decisive_t5_dir, dtype="float32")
    generator = load_generator(decisive_t5_dir, quantize="int8")
    assert generator.dtype == torch.float32 and "int8" in generator.dtype_reason
    assert isinstance(generator.weights.decoder[0].self_qkv, Int8Linear)
    prompts = seeded_prompts(generator.tokenizer)
    share = agreement(engine_greedy(generator, prompts), engine_greedy(reference, prompts))
    print(f"int8 agreement with float32: {share:.4f}")
    assert share >= MIN_INT8_AGREEMENT
    # Rows are quantized one by one: a request gets the same tokens alone as in the batch.
    assert engine_greedy(generator, prompts[:1]) == engine_greedy(generator, prompts)[:1]


def test_int8_asks_for_a_cpu_and_float32_between_layers(tiny_t5_dir):
    with pytest.raises(ModelLoadError, match="--dtype auto or float32"):
        load_generator(tiny_t5_dir, dtype="bfloat16", quantize="int8")
    with pytest.raises(ModelLoadError, match="quantize must be one of"):
        load_generator(tiny_t5_dir, quantize="int4")
    assert load_generator(tiny_t5_dir, dtype="auto", quantize="int8").dtype == torch.float32
