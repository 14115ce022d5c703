"""The few shapes oneDNN runs at: a bounded set of row counts, and padded products and GELUs
that give the unpadded results."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernels.linear import PackedLinear
from kernels.shapes import EXACT_ROWS, MAX_ROWS_PER_CALL, erf_gelu, padded_rows


def test_row_counts_fall_into_a_few_per_octave():
    counts = {n: padded_rows(n) for n in range(1, MAX_ROWS_PER_CALL + 1)}
    assert all(counts[n] == n for n in range(1, EXACT_ROWS + 1))  # decode steps run as they are
    assert all(n <= padded <= 1.25 * n for n, padded in counts.items())
    # 16 exact counts, then 4 for each octave up to 256: kernels compiled once
    assert len(set(counts.values())) == EXACT_ROWS + 4 * 4
    assert padded_rows(17) == 20 and padded_rows(100) == 112 and padded_rows(250) == 256


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_padded_linear_rows_equal_the_unpadded_product(dtype):
    torch.manual_seed(0)
    weight, bias = torch.randn(96, 64, dtype=dtype), torch.randn(96, dtype=dtype)
    layer = PackedLinear(weight, bias)
    for num_rows in (1, 7, 16, 17, 45, 100, 333, 1000):  # the last two in several calls
        x = torch.randn(num_rows, 64, dtype=dtype)
        unpadded = torch.ops.mkldnn._linear_pointwise(x, layer.packed, bias, "none", [], "")
        assert torch.equal(layer(x), unpadded)  # bit for bit, padding or not
    x = torch.randn(3, 11, 64, dtype=dtype)  # [batch, width, features], 33 rows run as 36
    assert torch.equal(layer(x), layer(x.view(33, 64)).view(3, 11, 96))


def test_erf_gelu_is_the_exact_gelu():
    x = torch.linspace(-8, 8, 4001)
    assert torch.allclose(erf_gelu(x), F.gelu(x), atol=1e-6, rtol=0)
    assert not torch.allclose(erf_gelu(x), F.gelu(x, approximate="tanh"), atol=1e-6, rtol=0)
    half = x.to(torch.bfloat16)
    assert erf_gelu(half).dtype == torch.bfloat16
    assert torch.allclose(erf_gelu(half).float(), F.gelu(half).float(), atol=2e-2, rtol=1e-2)
