"""Beam searches in the scheduler, with a fabricated runner: num_beams slots taken all at once
or not at all, every beam decoding on the budget, every slot freed on abort, a request that can
never fit refused, and finished hypotheses kept and ordered as Hugging Face keeps them."""
from __future__ import annotations

import time

import pytest

from scheduler.beams import NOT_A_SCORE, BeamSearch
from scheduler.output import BeamCandidates
from scheduler.request import RequestStatus
from scheduler.sampling_params import SamplingParams
from scheduler.scheduler import Scheduler
from takeoff.engine.core import EngineCore, Lane
from tests.unit.fakes import EOS, FakeRunner, decode_ids, gen, scheduler_config, step


def make(**config) -> Scheduler:
    return Scheduler(scheduler_config(**config), decode_ids)


def test_a_beam_search_takes_all_its_slots_at_once_and_nothing_overtakes_it():
    sched = make(max_num_seqs=4)
    runner = FakeRunner({"a": [5, 5, EOS]})
    sched.add(gen("a"))
    step(sched, runner)
    sched.add(gen("b", num_beams=4, max_new_tokens=6))
    sched.add(gen("c"))
    assert sched.num_free_slots == 3
    for _ in range(2):  # a holds a slot until it ends: b waits for all four, c waits behind b
        so, _ = step(sched, runner)
        assert so.prefill == [] and sched.num_waiting == 2
    so, _ = step(sched, runner)
    assert so.freed_slots == [0]
    assert [(p.request_id, p.slots) for p in so.prefill] == [("b", [0, 1, 2, 3])]
    assert sched.num_free_slots == 0 and sched.get("b").slots == [0, 1, 2, 3]
    so, _ = step(sched, runner)
    # Every beam decodes; the scheduler says how the beams go on from the last candidates.
    assert sorted(so.decode_slots) == [0, 1, 2, 3] and [s.request_id for s in so.beam_steps] == ["b"]
    assert so.beam_steps[0].parents == [0, 1, 2, 3] and so.beam_steps[0].token_ids == [7, 8, 9, 10]


def test_an_abort_frees_every_beam_slot_for_the_next_step():
    sched = make(max_num_seqs=5)
    runner = FakeRunner()
    sched.add(gen("b", num_beams=4))
    sched.add(gen("g"))
    step(sched, runner)
    step(sched, runner)
    sched.abort("b")
    assert sched.num_free_slots == 4 and sched.num_running == 1
    sched.add(gen("next", num_beams=3))
    so, out = step(sched, runner)
    assert sorted(so.freed_slots) == [0, 1, 2, 3] and so.decode_slots == [4] and so.beam_steps == []
    assert so.prefill[0].slots == [0, 1, 2] and sorted(o.request.request_id for o in out) == ["g", "next"]


def test_a_beam_search_larger_than_the_reader_fails_at_once():
    sched = make(max_num_seqs=3)
    sched.add(gen("big", num_beams=4))
    so, out = step(sched, FakeRunner())
    assert so.prefill == [] and sched.num_free_slots == 3 and not sched.has_work
    assert out[0].finished and out[0].request.status is RequestStatus.FINISHED_ERROR
    assert "num_beams 4" in out[0].request.error and "has 3" in out[0].request.error


def test_each_beam_costs_a_token_of_the_step_budget():
    sched = make(max_num_seqs=8, max_num_batched_tokens=9)
    runner = FakeRunner()
    sched.add(gen("b", num_beams=4))
    step(sched, runner)
    sched.add(gen("x", num_prompt=3))
    sched.add(gen("y", num_prompt=3))
    so, _ = step(sched, runner)  # 4 beams leave 5 tokens: one prompt of 3, not two (6)
    assert len(so.decode_slots) == 4 and [p.request_id for p in so.prefill] == ["x"]


def test_the_beams_end_with_their_best_hypotheses_and_free_their_slots():
    # Step 1: the best candidate (token 5) goes on, the second (EOS) finishes at once. Step 2:
    # both beams end with EOS; the search keeps the two best of three, best first.
    script = [BeamCandidates([0, 0, 0, 0], [5, EOS, 6, 8], [-0.5, -0.6, -0.9, -1.0]),
              BeamCandidates([0, 1, 0, 1], [EOS, EOS, 8, 9], [-0.7, -1.0, -1.2, -1.5])]
    sched = make(max_num_seqs=2)
    sched.add(gen("b", num_beams=2, num_return_sequences=2, max_new_tokens=5))
    runner = FakeRunner(beam_scripts={"b": script})
    step(sched, runner)
    so, out = step(sched, runner)
    assert so.beam_steps[0].parents == [0, 0] and so.beam_steps[0].token_ids == [5, 6]
    request = out[0].request
    assert out[0].finished and request.status is RequestStatus.FINISHED_EOS
    assert [(s.token_ids, round(s.score, 6)) for s in request.sequences] == [((5, EOS), -0.35), ((6, EOS), -0.5)]
    assert out[0].text_delta == request.text == "<5>" and request.output_ids == [5, EOS]
    assert request.num_output_tokens == 4
    so, _ = step(sched, runner)
    assert sorted(so.freed_slots) == [0, 1] and sched.num_free_slots == 2


def search(**sampling) -> BeamSearch:
    return BeamSearch("r", SamplingParams(**sampling), EOS, decode_ids)


def test_length_penalty_decides_between_short_and_long_hypotheses():
    first = BeamCandidates([0, 0, 0, 0], [5, EOS, 6, 8], [-0.5, -0.6, -0.9, -1.0])
    second = BeamCandidates([0, 1, 0, 1], [EOS, EOS, 8, 9], [-0.7, -1.0, -1.2, -1.5])
    ranked = {}
    for length_penalty in (0.0, 1.0):
        beams = search(num_beams=2, num_return_sequences=2, length_penalty=length_penalty, max_new_tokens=5)
        beams.step(first)
        beams.step(second)
        assert beams.is_done
        ranked[length_penalty] = [s.token_ids for s in beams.results()]
    assert ranked == {0.0: [(EOS,), (5, EOS)], 1.0: [(5, EOS), (6, EOS)]}


def test_early_stopping_true_ends_as_soon_as_num_beams_hypotheses_finished():
    # Two hypotheses finish at step 1 (both among the first k); the search ends there only
    # when early_stopping is True (otherwise the running beam at -0.3 could still beat -0.9).
    first = BeamCandidates([0, 0, 0, 0], [EOS, EOS, 5, 6], [-0.2, -0.9, -0.3, -1.2])
    done = {}
    for early_stopping in (True, False, "never"):
        beams = search(num_beams=2, early_stopping=early_stopping, max_new_tokens=5)
        beams.step(first)
        done[early_stopping] = beams.is_done
    assert done == {True: True, False: False, "never": False}


def test_a_stop_sequence_ends_a_hypothesis_and_is_cut_from_its_text():
    beams = search(num_beams=2, max_new_tokens=6, stop=("<6>",))
    beams.step(BeamCandidates([0, 0, 0, 0], [5, 9, 4, 3], [-0.1, -0.2, -0.3, -0.4]))
    beams.step(BeamCandidates([0, 1, 0, 1], [6, 8, 4, 3], [-0.3, -0.5, -0.6, -0.8]))
    assert beams.pending.token_ids == [8, 4]  # (5, 6) finished at its stop sequence
    best = beams.results()[0]
    assert best.token_ids == (5, 6) and best.text == "<5>" and best.finish_reason == "stop_sequence"


@pytest.mark.parametrize("field, sampling", [
    ("num_beams", dict(num_beams=0)),
    ("num_return_sequences", dict(num_beams=2, num_return_sequences=3)),
    ("early_stopping", dict(early_stopping="soon")),
    ("early_stopping", dict(early_stopping=1)),
    ("num_beams", dict(num_beams=2, top_k=0)),
    ("length_penalty", dict(length_penalty=float("inf"))),
])
def test_bad_beam_settings_are_refused_naming_the_field(field, sampling):
    with pytest.raises(ValueError, match=field):
        SamplingParams(**sampling)


def test_a_failed_batch_is_run_again_with_each_beam_search_whole():
    """When a step raises, EngineCore runs each request alone: a beam search's slots and its
    beam step stay together, and its search goes on."""

    class FailsOnce(FakeRunner):
        def execute(self, so, between_layers=None):
            if len(self.steps) == 2 and not getattr(self, "failed", False):
                self.failed = True
                raise RuntimeError("a batch fails once")
            return super().execute(so, between_layers)

    runner = FailsOnce()
    core = EngineCore()
    core.add_lane(Lane("gen", make(max_num_seqs=6), runner, True))
    now = time.monotonic()
    core.add(gen("b", num_beams=3, max_new_tokens=4, arrival_time=now), "gen")
    core.add(gen("g", max_new_tokens=4, arrival_time=now), "gen")
    outputs = []
    while core.has_work:
        outputs += core.step()
    assert runner.failed
    alone = [so for so in runner.steps if so.beam_steps and len(so.decode_slots) == 3]
    assert alone and all(so.beam_steps[0].request_id == "b" for so in alone)
    assert {o.request_id: o.status for o in outputs} == {"b": RequestStatus.FINISHED_LENGTH,
                                                         "g": RequestStatus.FINISHED_LENGTH}
    assert len(next(o for o in outputs if o.request_id == "b").sequences) == 1
    assert NOT_A_SCORE < next(o for o in outputs if o.request_id == "b").sequences[0].score
