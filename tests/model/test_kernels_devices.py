"""dtype `auto`, and bfloat16 greedy decoding that agrees with Hugging Face's own bfloat16."""
from __future__ import annotations

import random

import torch
from transformers import T5ForConditionalGeneration

from benchmarks.offline_systems import BenchRequest, run_engine
from kernels import devices
from kernels.loader import load_classifier, load_generator
from kernels.runner import ModelRunner
from scheduler.sampling_params import SamplingParams
from tests.tiny_models import CORPUS

MIN_BF16_AGREEMENT = 0.95


def test_auto_takes_bf16_only_where_the_hardware_computes_it(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_bf16_features", lambda: ["AVX512-BF16"])
    assert devices.resolve_dtype(cpu, "auto") == (torch.bfloat16, "auto: this CPU computes bfloat16 "
                                                                   "natively (AVX512-BF16)")
    monkeypatch.setattr(devices, "cpu_bf16_features", lambda: [])
    dtype, reason = devices.resolve_dtype(cpu, "auto")
    assert dtype == torch.float32 and "neither AMX nor AVX512-BF16" in reason
    assert devices.resolve_dtype(cpu, "bfloat16") == (torch.bfloat16, "bfloat16 as asked")
    for capability, expected in (((8, 0), torch.bfloat16), ((7, 5), torch.float32)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device, c=capability: c)
        dtype, reason = devices.resolve_dtype(torch.device("cuda"), "auto")
        assert dtype == expected and f"{capability[0]}.{capability[1]}" in reason


def test_loaded_models_carry_the_resolved_dtype_and_why(tiny_t5_dir, tiny_classifier_dir):
    expected, reason = devices.resolve_dtype(torch.device("cpu"), "auto")
    for model in (load_generator(tiny_t5_dir, dtype="auto"), load_classifier(tiny_classifier_dir, dtype="auto")):
        assert (model.dtype, model.dtype_reason) == (expected, reason)
    if expected == torch.bfloat16:
        assert load_generator(tiny_t5_dir, dtype="auto").weights.decoder[0].self_qkv.dtype == torch.bfloat16
    forced = load_generator(tiny_t5_dir, dtype="float32")
    assert (forced.dtype, forced.dtype_reason) == (torch.float32, "float32 as asked")


def agreement(outputs: list[list[int]], references: list[list[int]]) -> float:
    """Share of the reference tokens produced before each sequence's first difference."""
    matched = sum(_common_prefix(o, r) for o, r in zip(outputs, references))
    return matched / sum(len(r) for r in references)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def seeded_prompts(tokenizer, count: int = 48) -> list[list[int]]:
    """Spans of the tiny models' corpus, 10-60 characters from seeded places."""
    rng = random.Random(0)
    prompts = []
    for _ in range(count):
        text = CORPUS[rng.randrange(len(CORPUS))]
        start = rng.randrange(len(text) // 2)
        prompts.append(tokenizer(text[start:start + rng.randint(10, 60)])["input_ids"])
    return prompts


def engine_greedy(generator, prompts: list[list[int]], num_new: int = 24) -> list[list[int]]:
    """Greedy outputs of the engine, prompts arriving over five steps into 8 slots."""
    requests = [BenchRequest(ids, num_new, i % 5, SamplingParams(max_new_tokens=num_new))
                for i, ids in enumerate(prompts)]
    runner = ModelRunner(generator, max_num_seqs=8, max_len=32, max_input_len=64)
    return run_engine(runner, generator.tokenizer, generator.eos_token_id, requests, 8).outputs


def test_bf16_greedy_agrees_with_hugging_face_bf16(decisive_t5_dir):
    generator = load_generator(decisive_t5_dir, dtype="bfloat16")
    model = T5ForConditionalGeneration.from_pretrained(decisive_t5_dir, dtype=torch.bfloat16).eval()
    prompts = seeded_prompts(generator.tokenizer)
    outputs = engine_greedy(generator, prompts)
    with torch.inference_mode():
        expected = [model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=24)[0, 1:].tolist()
                    for ids in prompts]
    share = agreement(outputs, expected)
    print(f"bf16 agreement with HF bf16 generate: {share:.4f} of {sum(map(len, expected))} tokens")
    assert share >= MIN_BF16_AGREEMENT
    assert len({t for o in outputs for t in o}) >= 20, "the model should emit varied tokens"
