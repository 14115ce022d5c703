"""Tiny models run fastest on one thread: their ops are too small to split, and on a busy
machine extra threads only wait on each other. decisive_t5_dir: a tiny T5 for precision tests;
family_dir(family): a tiny model of each encoder-decoder family (tests/family_models.py)."""
from __future__ import annotations

import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from tests.family_models import save_tiny_family
from tests.tiny_models import build_t5_tokenizer, teach_to_copy


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num_threads)


# test_accelerator.py repeats the equality checks on CUDA; with no GPU it has nothing to run, so it
# is not collected at all (rather than reported as skipped).
collect_ignore = [] if torch.cuda.is_available() else ["test_accelerator.py"]


@pytest.fixture(scope="session")
def decisive_t5_dir(tmp_path_factory):
    """A tiny T5 taught to copy long enough that its greedy choices are not near-ties: on the
    barely trained test models even HF bf16 in a batch agrees with HF bf16 alone on ~90%."""
    tokenizer = build_t5_tokenizer()
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(
        vocab_size=len(tokenizer), d_model=64, d_kv=16, num_heads=4, d_ff=128, num_layers=2,
        num_decoder_layers=2, relative_attention_num_buckets=8, relative_attention_max_distance=20,
        dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False))
    teach_to_copy(model, tokenizer, steps=200)
    path = tmp_path_factory.mktemp("decisive-t5")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def family_dir(tmp_path_factory):
    """family_dir(family) -> directory of the tiny model of that family, built once per session."""
    built = {}

    def build(family: str):
        if family not in built:
            built[family] = save_tiny_family(tmp_path_factory.mktemp(f"tiny-{family}"), family)
        return built[family]

    return build
