"""The pieces LoRA stands on: `sources` finds every Hugging Face linear in the regrouped weights."""
from __future__ import annotations

import pytest
import torch
from transformers import T5ForConditionalGeneration

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
