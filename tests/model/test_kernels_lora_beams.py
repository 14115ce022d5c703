"""LoRA with beam search: a beam search's beams (forked as they go) all run with its request's
adapter, beside greedy requests of other adapters and of none, and each request gets what
PEFT's model for its adapter gives with Hugging Face generate."""
from __future__ import annotations

from benchmarks.offline_systems import BenchRequest, run_engine
from kernels.loader import load_generator
from scheduler.sampling_params import SamplingParams
from tests.model.beam_reference import assert_equal_to_hf, hf_beams
from tests.model.test_kernels_lora_peft import adapter_dirs, lora_runner, peft_model  # noqa: F401
from tests.model.test_kernels_t5 import hf_greedy, prompts

# (prompt index, adapter, num_beams, max_new_tokens, arrival step); num_beams 1 is greedy.
REQUESTS = [(1, "all-rslora", 3, 20, 0), (5, None, 1, 18, 0), (3, "qv", 4, 16, 1),
            (6, "patterns", 1, 22, 1), (1, None, 3, 20, 2), (8, "ff-regex", 2, 14, 3)]


def test_beam_searches_with_adapters_equal_peft_beside_greedy_requests(decisive_t5_dir, adapter_dirs):
    generator = load_generator(decisive_t5_dir)
    inputs = prompts(generator.tokenizer)
    requests = [BenchRequest(inputs[i], n, arrival, SamplingParams(max_new_tokens=n, num_beams=k), lora_id=name)
                for i, name, k, n, arrival in REQUESTS]
    runner = lora_runner(generator, adapter_dirs, max_num_seqs=16)
    result = run_engine(runner, generator.tokenizer, generator.eos_token_id, requests, runner.max_num_seqs)
    models = {name: peft_model(decisive_t5_dir, adapter_dirs.get(name)) for _, name, *_ in REQUESTS}
    for request, sequences, output in zip(requests, result.sequences, result.outputs):
        model = models[request.lora_id]
        if request.params.num_beams > 1:
            assert_equal_to_hf(sequences, hf_beams(model, request.prompt_ids, request.params), generator.tokenizer)
        else:
            assert output == hf_greedy(model, request.prompt_ids, request.num_tokens)
    # Each adapter changed what its beam search found: its update reached every beam.
    base = models[None]
    assert all(hf_beams(base, r.prompt_ids, r.params) != hf_beams(models[r.lora_id], r.prompt_ids, r.params)
               for r in requests if r.lora_id is not None and r.params.num_beams > 1)
