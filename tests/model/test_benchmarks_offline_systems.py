"""The offline benchmark's systems produce the same tokens on a tiny model (nothing is timed)."""
from __future__ import annotations

from transformers import T5ForConditionalGeneration

from benchmarks.models import save_random_t5
from benchmarks.offline_beam import run_hf_beams
from benchmarks.offline_systems import BenchRequest, make_requests, run_engine, run_hf
from kernels.loader import load_generator
from kernels.runner import ModelRunner
from scheduler.sampling_params import SamplingParams

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


def test_beam_workload_baseline_and_engine_agree(tmp_path):
    """Hugging Face static beam batches, each row held to its own length, give every request
    what the engine gives it, and what HF gives it alone."""
    model_dir = save_random_t5(tmp_path / "model", **TINY)
    greedy = make_requests(8, 300, input_lens=(5, 12), output_lens=(3, 15))
    requests = [BenchRequest(r.prompt_ids, r.num_tokens, params=SamplingParams(
        max_new_tokens=r.num_tokens, min_new_tokens=r.num_tokens, num_beams=3)) for r in greedy]
    model = T5ForConditionalGeneration.from_pretrained(model_dir).eval()
    alone = run_hf_beams(model, requests, 1, "hf alone")
    static = run_hf_beams(model, requests, 4, "hf static 4")
    generator = load_generator(model_dir)
    runner = ModelRunner(generator, max_num_seqs=6, max_len=16, max_input_len=12)
    engine = run_engine(runner, generator.tokenizer, generator.eos_token_id, requests, 6)
    assert [len(o) for o in engine.outputs] == [r.num_tokens for r in requests]
    assert engine.outputs == alone.outputs == static.outputs
    assert engine.outputs != run_hf(model, greedy, 4, "greedy").outputs  # the search changed something
