"""Beam search decodes every encoder-decoder family as Hugging Face's generate(num_beams=...)
does with the model's own generation_config (forced BOS/EOS, bad words, no-repeat n-grams, min
length applied to each beam's log-probabilities): the same hypotheses, in the same order, with
the same scores, for requests that join a running batch beside greedy ones."""
from __future__ import annotations

import pytest
from transformers import AutoModelForSeq2SeqLM

from benchmarks.offline_systems import BenchRequest
from kernels.loader import load_generator
from tests.family_models import FAMILIES
from tests.model.beam_reference import assert_equal_to_hf, hf_beams, prompts
from tests.model.test_families import hf_generate, request_params, run_family

# Beam requests (num_beams, num_return_sequences) and one greedy request between them.
BEAMS = [(3, 2), (2, 1), None, (4, 3)]
ARRIVALS = [0, 1, 1, 3]
MAX_NEW_TOKENS = 14


@pytest.mark.parametrize("family", list(FAMILIES))
def test_beam_search_equals_hugging_face_for_every_family(family_dir, family):
    path = family_dir(family)
    generator = load_generator(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    inputs = prompts(generator.tokenizer)
    params = [request_params(generator, max_new_tokens=MAX_NEW_TOKENS) if beams is None else
              request_params(generator, max_new_tokens=MAX_NEW_TOKENS, num_beams=beams[0],
                             num_return_sequences=beams[1])
              for beams in BEAMS]
    requests = [BenchRequest(ids, MAX_NEW_TOKENS, arrival, p) for ids, arrival, p in zip(inputs, ARRIVALS, params)]
    result, steps, _, _ = run_family(generator, requests, max_num_seqs=10)

    assert any(out.prefill and out.decode_slots for out in steps[1:]), "requests should join a running batch"
    for ids, p, sequences, output in zip(inputs, params, result.sequences, result.outputs):
        if p.num_beams == 1:
            assert output == hf_generate(model, ids, MAX_NEW_TOKENS)
        else:
            assert_equal_to_hf(sequences, hf_beams(model, ids, p), generator.tokenizer)
