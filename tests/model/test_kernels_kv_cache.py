"""The elastic KV buffer keeps every occupied row's values when it is laid out again."""
import torch

from kernels.kv_cache import ElasticKV


def filled(kv: ElasticKV, num_used: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    keys = torch.randn(kv.keys[:, :num_used, :, :length].shape, generator=generator)
    values = torch.randn(keys.shape, generator=generator)
    kv.keys[:, :num_used, :, :length] = keys
    kv.values[:, :num_used, :, :length] = values
    return keys, values


def test_growing_and_shrinking_keep_the_values_and_pause_between_layers():
    kv = ElasticKV(num_layers=3, num_rows=5, num_heads=2, d_kv=4, max_len=64, step=8,
                   device="cpu", dtype=torch.float32)
    kv.fit(8, num_used=4)
    keys, values = filled(kv, 4, 8, seed=0)
    pauses = []
    kv.fit(30, num_used=4, between_layers=lambda: pauses.append(kv.capacity))  # grows to 32
    assert kv.capacity == 32 and pauses == [8, 8, 8]  # once per layer, before the switch
    assert torch.equal(kv.keys[:, :4, :, :8], keys) and torch.equal(kv.values[:, :4, :, :8], values)
    assert not kv.keys[:, :4, :, 8:].any()  # new positions start at zero

    keys, values = filled(kv, 4, 10, seed=1)
    kv.fit(10, num_used=4)  # 16 + 2 * 8 <= 32: shrinks to 16
    assert kv.capacity == 16
    assert torch.equal(kv.keys[:, :4, :, :10], keys) and torch.equal(kv.values[:, :4, :, :10], values)


def test_a_small_drop_does_not_lay_the_cache_out_again():
    kv = ElasticKV(num_layers=2, num_rows=2, num_heads=1, d_kv=2, max_len=64, step=8,
                   device="cpu", dtype=torch.float32)
    kv.fit(32, num_used=2)
    kv.fit(20, num_used=2)  # 24 + 16 > 32: stays
    assert kv.capacity == 32
