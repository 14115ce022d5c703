"""Every encoder-decoder family decodes as Hugging Face's generate does, with the model's own
generation_config: token for token in float32, in a running batch that changes under it; its
streams join to the final text; bfloat16 agrees with Hugging Face's own bfloat16."""
from __future__ import annotations

from collections import defaultdict

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from benchmarks.offline_systems import BenchRequest, run_engine
from kernels.loader import load_generator
from kernels.runner import ModelRunner
from scheduler.sampling_params import SamplingParams
from tests.family_models import FAMILIES
from tests.model.test_kernels_t5 import ARRIVALS, MAX_NEW, prompts
from tests.model.test_kernels_devices import MIN_BF16_AGREEMENT, agreement, seeded_prompts

FAMILY_NAMES = list(FAMILIES)


def request_params(generator, **request) -> SamplingParams:
    """The request's fields over the model's generation_config defaults (what the server's
    layering does once the reader is picked)."""
    return SamplingParams(**{**generator.generation_defaults.sampling, **request})


def hf_generate(model, prompt_ids: list[int], max_new_tokens: int, **options) -> list[int]:
    """Hugging Face greedy generate with the model's generation_config; the start token cut off."""
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt_ids]), do_sample=False, num_beams=1,
                             max_new_tokens=max_new_tokens, **options)
    return out[0, 1:].tolist()


def run_family(generator, requests: list[BenchRequest], max_num_seqs: int = 4, max_len: int = 64):
    """(the engine's result, the steps it ran, each request's streamed text, each final text)."""
    steps, streamed, final = [], defaultdict(str), {}

    def on_output(output) -> None:
        streamed[int(output.request_id)] += output.text_delta
        if output.finished:
            final[int(output.request_id)] = output.text

    runner = ModelRunner(generator, max_num_seqs=max_num_seqs, max_len=max_len, max_input_len=64)
    result = run_engine(runner, generator.tokenizer, generator.eos_token_id, requests, max_num_seqs,
                        on_step=lambda step, out: steps.append(out), on_output=on_output)
    return result, steps, streamed, final


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_greedy_batch_matches_hugging_face_generate(family_dir, family):
    path = family_dir(family)
    generator = load_generator(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    inputs = prompts(generator.tokenizer)
    requests = [BenchRequest(ids, n, arrival, request_params(generator, max_new_tokens=n), stream=i % 2 == 0)
                for i, (ids, n, arrival) in enumerate(zip(inputs, MAX_NEW, ARRIVALS))]
    result, steps, streamed, final = run_family(generator, requests)

    expected = [hf_generate(model, ids, n) for ids, n in zip(inputs, MAX_NEW)]
    assert result.outputs == expected
    tokenizer = generator.tokenizer
    for i, request in enumerate(requests):
        assert final[i] == tokenizer.decode(expected[i], skip_special_tokens=True)
        if request.stream:
            assert streamed[i] == final[i]
        else:
            assert streamed[i] == ""
    # The batch changed under the decoder: joins while others decode, slot reuse, and varied
    # outputs of different lengths.
    assert any(out.prefill and out.decode_slots for out in steps[1:])
    owners = [(p.slot, p.request_id) for out in steps for p in out.prefill]
    assert len({slot for slot, _ in owners}) < len(owners)
    assert len({len(o) for o in result.outputs}) >= 4
    assert len({t for o in result.outputs for t in o}) >= 15, "the tiny model should emit varied tokens"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_bf16_greedy_agrees_with_hugging_face_bf16(family_dir, family):
    path = family_dir(family)
    generator = load_generator(path, dtype="bfloat16")
    model = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=torch.bfloat16).eval()
    inputs = seeded_prompts(generator.tokenizer)
    requests = [BenchRequest(ids, 24, i % 5, request_params(generator, max_new_tokens=24))
                for i, ids in enumerate(inputs)]
    result, _, _, _ = run_family(generator, requests, max_num_seqs=8, max_len=32)
    expected = [hf_generate(model, ids, 24) for ids in inputs]
    share = agreement(result.outputs, expected)
    print(f"{family}: bf16 agreement with HF bf16 generate {share:.4f} of {sum(map(len, expected))} tokens")
    assert share >= MIN_BF16_AGREEMENT
    assert len({t for o in result.outputs for t in o}) >= 20, "the model should emit varied tokens"
