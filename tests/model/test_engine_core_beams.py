"""Beam searches inside the continuous batch: beside single sequences that join and leave, with
classifications cutting in between layers, and aborted with every row freed."""
from __future__ import annotations

import itertools

import pytest
from transformers import T5ForConditionalGeneration

from kernels.loader import load_classifier, load_generator
from kernels.runner import ModelRunner
from scheduler.output import OnePassInput, SchedulerOutput
from scheduler.request import Request, Task
from scheduler.sampling_params import SamplingParams
from scheduler.scheduler import Scheduler
from takeoff.engine.core import EngineCore, Lane
from tests.model.beam_reference import assert_equal_to_hf, hf_beams, run_requests
from tests.model.test_kernels_t5 import hf_greedy, prompts
from tests.tiny_models import CORPUS
from tests.unit.fakes import scheduler_config

# Greedy and beam requests alternating, arriving over the first steps.
MIXED = [SamplingParams(max_new_tokens=14), SamplingParams(max_new_tokens=20, num_beams=4),
         SamplingParams(max_new_tokens=9), SamplingParams(max_new_tokens=16, num_beams=3, num_return_sequences=2),
         SamplingParams(max_new_tokens=22), SamplingParams(max_new_tokens=12, num_beams=2, early_stopping=True),
         SamplingParams(max_new_tokens=18, num_beams=5, length_penalty=0.5), SamplingParams(max_new_tokens=11)]
ARRIVALS = [0, 0, 1, 3, 3, 6, 8, 12]


@pytest.fixture(scope="module")
def generator_and_model(tiny_t5_dir):
    return load_generator(tiny_t5_dir), T5ForConditionalGeneration.from_pretrained(tiny_t5_dir).eval()


def expected(model, prompt_ids: list[int], params: SamplingParams):
    if params.is_beam_search:
        return hf_beams(model, prompt_ids, params)
    return hf_greedy(model, prompt_ids, params.max_new_tokens)


def check(generator, model, inputs, params, outputs, sequences) -> None:
    for ids, p, output, returned in zip(inputs, params, outputs, sequences):
        if p.is_beam_search:
            assert_equal_to_hf(returned, expected(model, ids, p), generator.tokenizer)
        else:
            assert output == expected(model, ids, p) and returned == []


def test_beams_and_single_sequences_share_steps_and_each_equals_hugging_face(generator_and_model):
    generator, model = generator_and_model
    inputs = prompts(generator.tokenizer)[:len(MIXED)]
    steps = []
    result = run_requests(generator, inputs, MIXED, ARRIVALS, max_num_seqs=10,
                          on_step=lambda step, out: steps.append(out))
    check(generator, model, inputs, MIXED, result.outputs, result.sequences)
    # The batch really mixed: beams stepping beside single sequences while others prefilled,
    # requests waiting for slots (10 slots, 24 wanted), and slots reused.
    assert any(out.beam_steps and out.prefill and len(out.decode_slots) > 4 for out in steps)
    owners = [(slot, p.request_id) for out in steps for p in out.prefill for slot in p.slots]
    assert len({slot for slot, _ in owners}) < len(owners)


class Recording:
    """The runner, keeping each step's scheduler output."""

    def __init__(self, runner) -> None:
        self.runner, self.steps = runner, []

    def execute(self, scheduler_output, between_layers=None):
        self.steps.append(scheduler_output)
        return self.runner.execute(scheduler_output, between_layers)


def engine(generator, max_num_seqs: int) -> tuple[EngineCore, Scheduler, Recording]:
    scheduler = Scheduler(scheduler_config(max_num_seqs=max_num_seqs),
                          decode=lambda ids: generator.tokenizer.decode(ids, skip_special_tokens=True))
    runner = Recording(ModelRunner(generator, max_num_seqs=max_num_seqs, max_len=32, max_input_len=64))
    core = EngineCore()
    core.add_lane(Lane("gen", scheduler, runner, holds_slots=True))
    return core, scheduler, runner


def generate(request_id: str, prompt_ids, params: SamplingParams, eos: int) -> Request:
    return Request(request_id, Task.GENERATE, prompt_ids, params, eos_token_id=eos)


def test_an_aborted_beam_search_frees_all_its_rows_within_one_step(generator_and_model):
    generator, model = generator_and_model
    eos = generator.eos_token_id
    inputs = prompts(generator.tokenizer)
    core, scheduler, recording = engine(generator, max_num_seqs=6)
    beam = SamplingParams(max_new_tokens=20, num_beams=4, min_new_tokens=20)
    single = generate("single", inputs[1], SamplingParams(max_new_tokens=20, min_new_tokens=20), eos)
    core.add(generate("beam", inputs[0], beam, eos), "gen")
    core.add(single, "gen")
    for _ in range(3):
        core.step()
    runner = recording.runner
    # Five sequences in five rows; one cross-attention row per request, the beams sharing one.
    assert len(runner.row_slots) == 5 and sorted(map(len, runner.cross_slots)) == [1, 4]
    beam_slots = scheduler.get("beam").slots
    core.abort("beam")
    following = generate("next", inputs[2], beam, eos)  # needs the 4 slots the abort frees
    core.add(following, "gen")
    core.step()
    assert sorted(recording.steps[-1].freed_slots) == sorted(beam_slots)
    assert sorted(recording.steps[-1].prefill[0].slots) == sorted(beam_slots)
    assert "beam" not in runner.beams and sorted(map(len, runner.cross_slots)) == [1, 4]
    while core.has_work:
        core.step()
    assert scheduler.num_free_slots == 6
    core.add(generate("last", inputs[3], SamplingParams(max_new_tokens=4), eos), "gen")
    core.step()  # the runner drops the finished sequences first
    assert len(runner.slots) == 1 and len(runner.cross_slots) == 1 and not runner.beams
    assert single.output_ids == hf_greedy(model, inputs[1], 20, min_new_tokens=20)
    assert_equal_to_hf(following.sequences, hf_beams(model, inputs[2], beam), generator.tokenizer)


def test_classifications_cut_in_between_beam_layers_and_change_nothing(generator_and_model,
                                                                      tiny_classifier_dir):
    generator, model = generator_and_model
    classifier = load_classifier(tiny_classifier_dir)
    core, _, _ = engine(generator, max_num_seqs=8)
    core.add_lane(Lane("cls", Scheduler(scheduler_config(), decode=str), ModelRunner(classifier=classifier),
                       holds_slots=False))
    sentence = classifier.tokenizer(CORPUS[0])["input_ids"]
    alone = ModelRunner(classifier=classifier).execute(
        SchedulerOutput(one_pass=[OnePassInput("c", sentence)])).probabilities["c"]
    polls, mid_step = itertools.count(), []

    def poll() -> None:  # a classification arrives at every third chance, between layers or not
        number = next(polls)
        if number % 3 == 0:
            core.add(Request(f"c{number}", Task.CLASSIFY, sentence), "cls")

    core.poll = poll
    core.publish = lambda outputs: mid_step.extend(o.row for o in outputs if core.seconds_in_step() > 0)
    inputs = prompts(generator.tokenizer)[:3]
    params = [SamplingParams(max_new_tokens=16, num_beams=4), SamplingParams(max_new_tokens=12),
              SamplingParams(max_new_tokens=14, num_beams=3, num_return_sequences=3)]
    requests = [generate(str(i), ids, p, generator.eos_token_id) for i, (ids, p) in enumerate(zip(inputs, params))]
    for request in requests:
        core.add(request, "gen")
    while core.has_work:
        core.step()
    check(generator, model, inputs, params, [r.output_ids for r in requests], [r.sequences for r in requests])
    assert len(mid_step) > 10 and all(row == alone for row in mid_step)
