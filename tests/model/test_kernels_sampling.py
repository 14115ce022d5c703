"""Sampling: HF's processing order and filters, and seeded requests that ignore their batch."""
from __future__ import annotations

import torch
from transformers.generation.logits_process import (LogitsProcessorList, MinNewTokensLengthLogitsProcessor,
                                                    NoRepeatNGramLogitsProcessor,
                                                    RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)

from benchmarks.offline_systems import BenchRequest, run_engine
from kernels.loader import load_generator
from kernels.runner import ModelRunner
from kernels.sampling import SlotState, apply_penalties, choose_tokens, warp
from scheduler.output import PrefillInput, SchedulerOutput
from scheduler.sampling_params import SamplingParams
from tests.model.test_kernels_t5 import prompts

EOS = 1


def hf_processors(p: SamplingParams) -> LogitsProcessorList:
    """What HF generate(do_sample=True) applies for these parameters, in its order."""
    processors = [RepetitionPenaltyLogitsProcessor(p.repetition_penalty)]
    if p.no_repeat_ngram_size:
        processors.append(NoRepeatNGramLogitsProcessor(p.no_repeat_ngram_size))
    processors += [MinNewTokensLengthLogitsProcessor(1, p.min_new_tokens, EOS),
                   TemperatureLogitsWarper(p.temperature)]
    if p.top_k:
        processors.append(TopKLogitsWarper(p.top_k))
    return LogitsProcessorList(processors + [TopPLogitsWarper(p.top_p)])


def test_processing_equals_hugging_face_processors():
    torch.manual_seed(0)
    cases = [SamplingParams(temperature=0.7, top_k=0, top_p=0.9, repetition_penalty=1.3),
             SamplingParams(temperature=1.3, top_k=5, top_p=1.0, no_repeat_ngram_size=2, min_new_tokens=9),
             SamplingParams(temperature=1.0, top_k=12, top_p=0.5, repetition_penalty=0.7,
                            no_repeat_ngram_size=3, min_new_tokens=3)]
    for params in cases:
        history = [0] + torch.randint(0, 6, (8,)).tolist()  # start token, then repeats
        state = SlotState("r", params, 5, history)
        logits = torch.randn(1, 40) * 3
        expected = hf_processors(params)(torch.tensor([history]), logits.clone())[0]
        ours = logits.clone()
        apply_penalties(ours, [state], EOS)
        assert torch.equal(warp(ours[0], params), expected), params


def test_filters_limit_what_can_be_drawn():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0, -1.0]])
    probs = logits.softmax(-1)[0]  # ~[.64, .23, .09, .03, .01, .004]

    def draws(params: SamplingParams) -> set[int]:
        state = SlotState("r", params, 1, [0], generator=torch.Generator().manual_seed(1))
        return {choose_tokens(logits.clone(), [state], EOS)[0] for _ in range(300)}

    assert draws(SamplingParams(top_k=2)) == {0, 1}
    assert draws(SamplingParams(top_k=0, top_p=float(probs[0] + 0.05))) == {0, 1}
    assert draws(SamplingParams(top_k=0, temperature=5.0)) == set(range(6))
    # min_new_tokens: token 1 is EOS here; never drawn before enough tokens exist.
    assert EOS not in draws(SamplingParams(top_k=0, temperature=5.0, min_new_tokens=2))
    # Temperature 0 and top_k 1 are greedy whatever the generator.
    assert draws(SamplingParams(top_k=0, temperature=0.0)) == {0}
    # A repetition penalty > 1 makes the already-seen best token less likely than the next.
    state = SlotState("r", SamplingParams(repetition_penalty=3.0), 1, [0])
    assert choose_tokens(logits.clone(), [state], EOS) == [1]


def test_seeded_request_same_alone_and_in_any_batch(tiny_t5_dir):
    generator = load_generator(tiny_t5_dir)
    inputs = prompts(generator.tokenizer)
    seeded = SamplingParams(max_new_tokens=20, top_k=0, temperature=1.5, top_p=0.95, seed=1234)

    def alone(slot: int) -> list[int]:
        runner = ModelRunner(generator, max_num_seqs=8, max_len=32, max_input_len=64)
        out = runner.execute(SchedulerOutput(prefill=[PrefillInput("a", slot, inputs[0], seeded)]))
        tokens = [out.next_token_ids["a"]]
        for _ in range(19):
            tokens.append(runner.execute(SchedulerOutput(decode_slots=[slot])).next_token_ids["a"])
        return tokens

    reference = alone(0)
    assert reference == alone(5)
    for others_seed in (None, 7):
        others = [BenchRequest(ids, 20, i % 4, SamplingParams(max_new_tokens=20, top_k=0, temperature=1.5,
                                                              seed=others_seed))
                  for i, ids in enumerate(inputs[1:])]
        requests = others[:4] + [BenchRequest(inputs[0], 20, 3, seeded)] + others[4:]
        runner = ModelRunner(generator, max_num_seqs=6, max_len=32, max_input_len=64)
        result = run_engine(runner, generator.tokenizer, -1, requests, 6)  # -1: never stop on EOS
        assert result.outputs[4] == reference
    # Different seeds really draw differently (the test above could not fail otherwise).
    other = SamplingParams(max_new_tokens=20, top_k=0, temperature=1.5, top_p=0.95, seed=99)
    requests = [BenchRequest(inputs[0], 20, 0, other)]
    result = run_engine(ModelRunner(generator, max_num_seqs=2, max_len=32, max_input_len=64),
                        generator.tokenizer, -1, requests, 2)
    assert result.outputs[0] != reference
