"""Beam search in the engine equals Hugging Face generate(num_beams=...) in float32: the same
hypotheses in the same order with the same scores, for a grid of settings on two model shapes,
with every request of a case in one running batch."""
from __future__ import annotations

import re

import pytest
import torch
from transformers import StoppingCriteria, StoppingCriteriaList, T5ForConditionalGeneration

from kernels.constrained import GrammarCompiler
from kernels.loader import load_generator
from scheduler.sampling_params import SamplingParams
from tests.model.beam_reference import (ARRIVALS, GrammarMask, assert_equal_to_hf, hf_beams, prompts,
                                        run_requests)

SHAPES = ["gated-gelu-untied", "relu-tied"]
# num_beams 2..5 with each other setting that changes which hypotheses come back.
GRID = [
    dict(num_beams=2),
    dict(num_beams=3, num_return_sequences=3),
    dict(num_beams=4),
    dict(num_beams=5, num_return_sequences=2),
    dict(num_beams=4, length_penalty=0.0, num_return_sequences=2),
    dict(num_beams=4, length_penalty=2.0, num_return_sequences=4),
    dict(num_beams=3, length_penalty=-1.0),
    dict(num_beams=4, early_stopping=True),
    dict(num_beams=5, early_stopping=True, num_return_sequences=5),
    dict(num_beams=4, early_stopping="never"),
    dict(num_beams=3, early_stopping="never", length_penalty=1.5, num_return_sequences=2),
    dict(num_beams=2, early_stopping="never", length_penalty=-0.5),
    dict(num_beams=4, no_repeat_ngram_size=2),
    dict(num_beams=3, no_repeat_ngram_size=3, num_return_sequences=3),
    dict(num_beams=4, min_new_tokens=8),
    dict(num_beams=2, min_new_tokens=4, max_new_tokens=6, num_return_sequences=2),
    dict(num_beams=5, repetition_penalty=1.5),
    dict(num_beams=4, repetition_penalty=0.7, early_stopping=True, num_return_sequences=2),
    dict(num_beams=4, max_new_tokens=3, num_return_sequences=4),
]
MAX_NEW_TOKENS = 20


@pytest.fixture(scope="module")
def models(tiny_t5_shape_dir):
    loaded = {}

    def get(shape: str):
        if shape not in loaded:
            path = tiny_t5_shape_dir(shape)
            loaded[shape] = load_generator(path), T5ForConditionalGeneration.from_pretrained(path).eval()
        return loaded[shape]

    return get


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", GRID, ids=lambda case: "-".join(f"{k}={v}" for k, v in case.items()))
def test_beam_search_equals_hugging_face(models, shape, case):
    generator, model = models(shape)
    params = SamplingParams(**{"max_new_tokens": MAX_NEW_TOKENS, **case})
    inputs = prompts(generator.tokenizer)
    result = run_requests(generator, inputs, [params] * len(inputs), ARRIVALS)
    for ids, sequences in zip(inputs, result.sequences):
        assert len(sequences) == params.num_return_sequences
        assert_equal_to_hf(sequences, hf_beams(model, ids, params), generator.tokenizer)
    assert result.outputs == [list(s[0].token_ids) for s in result.sequences]  # output_ids: the best


@pytest.mark.parametrize("num_beams, length_penalty", [(3, 1.0), (4, 0.5)])
def test_constrained_beams_match_their_pattern_and_hugging_face(models, num_beams, length_penalty):
    """A grammar matcher per beam, forked and reordered with its beam: every hypothesis matches
    the regex, and all equal HF's beam search under the same mask."""
    generator, model = models("gated-gelu-untied")
    regex = r"[0-9]{3}-[a-z]{2,8}"
    params = SamplingParams(max_new_tokens=30, num_beams=num_beams, num_return_sequences=num_beams,
                            length_penalty=length_penalty, regex=regex)
    inputs = prompts(generator.tokenizer)
    result = run_requests(generator, inputs, [params] * len(inputs), ARRIVALS)
    mask = GrammarMask(GrammarCompiler.for_model(generator).compile(regex=regex))
    for ids, sequences in zip(inputs, result.sequences):
        assert_equal_to_hf(sequences, hf_beams(model, ids, params, logits_processor=[mask]),
                           generator.tokenizer)
        for sequence in sequences:
            assert re.fullmatch(regex, sequence.text), sequence.text
    assert len({s.text for seqs in result.sequences for s in seqs}) > num_beams, "hypotheses should differ"


class TextContains(StoppingCriteria):
    """HF's stopping criteria see every candidate: this one ends those whose text contains `stop`."""

    def __init__(self, tokenizer, stop: str) -> None:
        self.tokenizer, self.stop = tokenizer, stop

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, 1:], skip_special_tokens=True)
        return torch.tensor([self.stop in text for text in texts])


def test_a_hypothesis_ends_at_a_stop_sequence_as_at_eos(models):
    generator, model = models("gated-gelu-untied")
    tokenizer = generator.tokenizer
    inputs = prompts(tokenizer)[:2]
    plain = SamplingParams(max_new_tokens=MAX_NEW_TOKENS, num_beams=4, num_return_sequences=4)
    best = run_requests(generator, inputs, [plain] * 2, [0, 0]).sequences[0][0].text
    stop = best[len(best) // 2:len(best) // 2 + 2]  # text the best hypothesis writes mid-way
    params = SamplingParams(max_new_tokens=MAX_NEW_TOKENS, num_beams=4, num_return_sequences=4, stop=(stop,))
    result = run_requests(generator, inputs, [params] * 2, [0, 0])
    reasons = []
    for ids, sequences in zip(inputs, result.sequences):
        expected = hf_beams(model, ids, params, stopping_criteria=StoppingCriteriaList([TextContains(tokenizer, stop)]))
        assert [list(s.token_ids) for s in sequences] == [e for e, _ in expected]
        for sequence, (_, score) in zip(sequences, expected):
            full = tokenizer.decode(list(sequence.token_ids), skip_special_tokens=True)
            assert abs(sequence.score - score) <= 1e-4 * max(1.0, abs(score))
            assert stop not in sequence.text
            if sequence.finish_reason == "stop_sequence":
                assert sequence.text == full[:full.index(stop)]
            else:
                assert sequence.text == full
            reasons.append(sequence.finish_reason)
    assert "stop_sequence" in reasons
