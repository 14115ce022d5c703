"""Hugging Face's beam search as the reference the engine's beam search must equal, and a driver
that runs requests through the engine (EngineCore over the scheduler and runner)."""
from __future__ import annotations

import torch
from transformers import LogitsProcessor

from benchmarks.offline_systems import BenchRequest, SystemResult, run_engine
from kernels.constrained import mask_logits
from kernels.runner import ModelRunner
from scheduler.sampling_params import SamplingParams
from tests.tiny_models import CORPUS

# Prompts of different lengths, and the engine step at which each one arrives.
CUTS = [30, 64, 17, 45]
ARRIVALS = [0, 1, 1, 4]


def prompts(tokenizer) -> list[list[int]]:
    return [tokenizer(CORPUS[i % len(CORPUS)][:cut])["input_ids"] for i, cut in enumerate(CUTS)]


def hf_beams(model, prompt_ids: list[int], params: SamplingParams, **extra) -> list[tuple[list[int], float]]:
    """HF generate(num_beams=...) on one prompt: each returned sequence's ids (a final EOS
    included) and its sequences_scores entry, best first."""
    out = model.generate(
        torch.tensor([prompt_ids]), do_sample=False, num_beams=params.num_beams,
        num_return_sequences=params.num_return_sequences, length_penalty=params.length_penalty,
        early_stopping=params.early_stopping, max_new_tokens=params.max_new_tokens,
        min_new_tokens=params.min_new_tokens, repetition_penalty=params.repetition_penalty,
        no_repeat_ngram_size=params.no_repeat_ngram_size, output_scores=True,
        return_dict_in_generate=True, **extra)
    # HF pads the shorter sequences (with EOS); beam_indices is -1 past each one's own length.
    lengths = (out.beam_indices >= 0).sum(dim=1).tolist()
    rows = out.sequences[:, 1:].tolist()
    return [(row[:n], score) for row, n, score in zip(rows, lengths, out.sequences_scores.tolist())]


def run_requests(generator, prompt_ids: list[list[int]], params: list[SamplingParams],
                 arrivals: list[int], max_num_seqs: int = 16, on_step=None) -> SystemResult:
    requests = [BenchRequest(ids, p.max_new_tokens, arrival, p)
                for ids, p, arrival in zip(prompt_ids, params, arrivals)]
    runner = ModelRunner(generator, max_num_seqs=max_num_seqs, max_len=48, max_input_len=64)
    return run_engine(runner, generator.tokenizer, generator.eos_token_id, requests, max_num_seqs,
                      on_step=on_step)


def assert_equal_to_hf(result_sequences, expected: list[tuple[list[int], float]], tokenizer) -> None:
    """The engine's hypotheses of one request against HF's: the same ids in the same order,
    scores within float32 noise, texts decoded from the ids."""
    assert [list(s.token_ids) for s in result_sequences] == [ids for ids, _ in expected]
    for sequence, (ids, score) in zip(result_sequences, expected):
        assert abs(sequence.score - score) <= 1e-4 * max(1.0, abs(score)), (sequence.score, score)
        assert sequence.text == tokenizer.decode(ids, skip_special_tokens=True)
        assert sequence.finish_reason == ("eos_token" if ids[-1] == tokenizer.eos_token_id else "length")


class GrammarMask(LogitsProcessor):
    """The reference's constrained decoding: each row's matcher rebuilt from its ids, then the
    tokens it does not allow set to -inf (as the engine's mask, after HF's own processors)."""

    def __init__(self, compiled) -> None:
        self.compiled = compiled

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for row, ids in enumerate(input_ids.tolist()):
            matcher = self.compiled.matcher()
            for token_id in ids[1:]:  # after the decoder start token
                matcher.advance(token_id)
            mask_logits(scores, [row], [matcher])
        return scores
