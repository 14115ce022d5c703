"""The offline benchmark's systems produce the same tokens on a tiny model (nothing is timed)."""
from __future__ import annotations

from transformers import T5ForConditionalGeneration

from benchmarks.models import save_random_t5
from benchmarks.offline_systems import make_requests, run_engine, run_hf
from kernels.loader import load_generator
from kernels.runner import ModelRunner

TINY = dict(vocab_size=300, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4)


def test_engine_driver_matches_hugging_face(tmp_path):
    model_dir = save_random_t5(tmp_path / "model", **TINY)
    requests = make_requests(10, 300, input_lens=(5, 12), output_lens=(3, 15))
    assert len({r.num_tokens for r in requests}) == 10
    model = T5ForConditionalGeneration.from_pretrained(model_dir).eval()
    sequential = run_hf(model, requests, 1, "hf sequential")
    static = run_hf(model, requests, 4, "hf static 4")

    generator = load_generator(model_dir)
    runner = ModelRunner(generator, max_num_seqs=4, max_len=16, max_input_len=12)
    engine = run_engine(runner, generator.tokenizer, generator.eos_token_id, requests, 4)
    assert [len(o) for o in engine.outputs] == [r.num_tokens for r in requests]
    assert engine.outputs == sequential.outputs == static.outputs
    assert engine.num_tokens == sum(r.num_tokens for r in requests)
