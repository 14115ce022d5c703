"""A target prefix starts the output as Hugging Face's decoder_input_ids do, and a prefix that
cannot be decoded is a clear error."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from benchmarks.offline_systems import BenchRequest
from kernels.generation_config import TargetPrefixError, target_prefix_ids
from kernels.loader import load_generator
from kernels.runner import ModelRunner
from scheduler.output import PrefillInput, SchedulerOutput
from scheduler.sampling_params import SamplingParams
from tests.model.beam_reference import assert_equal_to_hf, hf_beams
from tests.model.test_kernels_t5 import ARRIVALS, MAX_NEW, prompts
from tests.model.test_families import request_params, run_family

PREFIXES = ["fra_Latn", "", "The quarterly", "fra_Latn Thanks for", "", "Why", "", "fra_Latn", "", "Your report"]


def hf_with_prefix(model, prompt_ids: list[int], prefix: tuple[int, ...], max_new_tokens: int) -> list[int]:
    """generate() from decoder_input_ids = [start] + prefix; the prefix counts in the output."""
    start = model.generation_config.decoder_start_token_id
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt_ids]), decoder_input_ids=torch.tensor([[start, *prefix]]),
                             do_sample=False, num_beams=1, max_new_tokens=max_new_tokens - len(prefix))
    return out[0, 1:].tolist()


@pytest.mark.parametrize("family", ["m2m_100", "bart", "electra2bert"])
def test_prefixed_requests_in_a_running_batch_decode_as_decoder_input_ids(family_dir, family):
    path = family_dir(family)
    generator = load_generator(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    tokenizer = generator.tokenizer
    texts = PREFIXES if family == "m2m_100" else [p.replace("fra_Latn", "").strip() for p in PREFIXES]
    prefixes = [target_prefix_ids(tokenizer, t, n, generator.eos_token_id) if t else () for t, n in zip(texts, MAX_NEW)]
    inputs = prompts(tokenizer)
    requests = [BenchRequest(ids, n, arrival, request_params(generator, max_new_tokens=n, decoder_prefix=prefix),
                             stream=True)
                for ids, n, arrival, prefix in zip(inputs, MAX_NEW, ARRIVALS, prefixes)]
    result, _, streamed, final = run_family(generator, requests)

    expected = [hf_with_prefix(model, ids, prefix, n) for ids, prefix, n in zip(inputs, prefixes, MAX_NEW)]
    assert result.outputs == expected
    for output, prefix, i in zip(result.outputs, prefixes, range(len(inputs))):
        assert tuple(output[:len(prefix)]) == prefix  # part of the output, as in generate
        assert streamed[i] == final[i]
    if family == "m2m_100":  # NLLB's language code: one special token, not its pieces
        assert prefixes[0] == (tokenizer.convert_tokens_to_ids("fra_Latn"),)
        assert final[2].startswith("The quarterly")


@pytest.mark.parametrize("family, text", [("m2m_100", "fra_Latn"), ("marian", "thanks for")])
def test_beam_searches_with_a_prefix_decode_as_decoder_input_ids(family_dir, family, text):
    """Every beam starts with the prefix; the length penalty counts what follows it, as HF's
    beam search counts only what follows decoder_input_ids. Beside unprefixed and greedy ones."""
    path = family_dir(family)
    generator = load_generator(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    n, start = 14, model.generation_config.decoder_start_token_id
    prefix = target_prefix_ids(generator.tokenizer, text, n, generator.eos_token_id)
    settings = [dict(num_beams=4, num_return_sequences=2, decoder_prefix=prefix),
                dict(num_beams=3, length_penalty=2.0, decoder_prefix=prefix),
                dict(num_beams=1, decoder_prefix=prefix), dict(num_beams=3)]
    params = [request_params(generator, max_new_tokens=n, **setting) for setting in settings]
    inputs = prompts(generator.tokenizer)[:len(params)]
    requests = [BenchRequest(ids, n, arrival, p) for ids, p, arrival in zip(inputs, params, [0, 1, 1, 2])]
    result, _, _, _ = run_family(generator, requests, max_num_seqs=12)

    for ids, p, sequences, output in zip(inputs, params, result.sequences, result.outputs):
        m = len(p.decoder_prefix)
        if p.num_beams == 1:
            assert output == hf_with_prefix(model, ids, prefix, n)
            continue
        expected = hf_beams(model, ids, replace(p, max_new_tokens=n - m),
                            decoder_input_ids=torch.tensor([[start, *p.decoder_prefix]]))
        assert_equal_to_hf(sequences, expected, generator.tokenizer)
        assert all(tuple(s.token_ids[:m]) == p.decoder_prefix for s in sequences)


def test_the_prefix_helper_refuses_what_it_cannot_encode(family_dir):
    tokenizer = load_generator(family_dir("bert2bert")).tokenizer
    assert len(target_prefix_ids(tokenizer, "thanks for the", 8)) == 3
    cases = [("", 8, "empty"), ("ʘ‿ʘ", 8, "cannot encode"), ("thanks for the clear demo", 3, "more than max_new_tokens"),
             ("thanks [SEP]", 8, "end-of-sequence")]
    for text, max_new_tokens, reason in cases:
        with pytest.raises(TargetPrefixError, match=reason):
            target_prefix_ids(tokenizer, text, max_new_tokens, eos_token_id=tokenizer.sep_token_id)


def test_the_runner_fails_a_prefix_it_cannot_decode_alone(family_dir):
    generator = load_generator(family_dir("bart"))
    runner = ModelRunner(generator, max_num_seqs=4, max_len=16, max_input_len=64)
    ids = prompts(generator.tokenizer)[0]
    bad = {"long": SamplingParams(max_new_tokens=2, decoder_prefix=(5, 6, 7)),
           "grammar": SamplingParams(max_new_tokens=8, decoder_prefix=(5,), regex="[a-z]+"),
           "vocabulary": SamplingParams(max_new_tokens=8, decoder_prefix=(10**6,))}
    good = PrefillInput("good", 3, ids, SamplingParams(max_new_tokens=8, decoder_prefix=(5, 6)))
    out = runner.execute(SchedulerOutput(prefill=[PrefillInput(name, i, ids, params)
                                                  for i, (name, params) in enumerate(bad.items())] + [good]))
    assert set(out.errors) == set(bad)
    assert "longer than max_new_tokens" in out.errors["long"] and "regex" in out.errors["grammar"]
    assert "outside the vocabulary" in out.errors["vocabulary"]
    assert out.next_token_ids == {"good": 5}
