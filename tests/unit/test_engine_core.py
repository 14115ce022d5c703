"""EngineCore's rules, with fabricated runners: every schedule is updated, failures stay with
their request, results follow request ids across slot reuse, classifications cut into a
generation step, and a non-streaming request hears only its end."""
from __future__ import annotations

import time

from scheduler.output import RunnerOutput
from scheduler.request import RequestStatus
from scheduler.scheduler import Scheduler
from takeoff.engine.core import EngineCore, Lane
from tests.unit import fakes
from tests.unit.fakes import EOS, FakeRunner, decode_ids, scheduler_config


def gen(request_id: str, **sampling):
    return fakes.gen(request_id, arrival_time=time.monotonic(), **sampling)


def cls(request_id: str):
    return fakes.cls(request_id, arrival_time=time.monotonic())


def core_with(runner, classifier=None, decode=decode_ids, **config) -> EngineCore:
    core = EngineCore()
    core.add_lane(Lane("gen", Scheduler(scheduler_config(**config), decode), runner, True))
    if classifier is not None:
        core.add_lane(Lane("cls", Scheduler(scheduler_config(), decode), classifier, False))
    return core


def run_all(core: EngineCore, max_steps: int = 100) -> dict[str, list]:
    outputs: dict[str, list] = {}
    for _ in range(max_steps):
        if not core.has_work:
            break
        for output in core.step():
            outputs.setdefault(output.request_id, []).append(output)
    return outputs


class PoisonRunner(FakeRunner):
    """Raises for any step that holds the poisoned request, as a model that chokes on one input."""

    def __init__(self, poisoned: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.poisoned = poisoned
        self.num_failed_steps = 0

    def execute(self, so, between_layers=None):
        owners = {p.slot: p.request_id for p in so.prefill} | self.slot_owner
        ids = [c.request_id for c in so.one_pass] + [owners.get(s) for s in
                                                     [p.slot for p in so.prefill] + so.decode_slots]
        if self.poisoned in ids:
            self.num_failed_steps += 1
            for slot in so.freed_slots:
                self.slot_owner.pop(slot, None)
            raise RuntimeError("cannot run this input")
        return super().execute(so, between_layers)


def test_a_request_that_breaks_the_runner_fails_alone():
    runner = PoisonRunner("bad", scripts={"good": [5, 6, EOS]})
    core = core_with(runner)
    for request_id in ("good", "bad", "other"):
        core.add(gen(request_id, max_new_tokens=4), "gen")
    outputs = run_all(core)
    assert outputs["bad"][-1].status is RequestStatus.FINISHED_ERROR
    assert "cannot run this input" in outputs["bad"][-1].error
    assert outputs["good"][-1].status is RequestStatus.FINISHED_EOS
    assert outputs["good"][-1].text == "<5><6>"
    assert outputs["other"][-1].num_output_tokens == 4
    assert runner.num_failed_steps >= 1 and not core.has_work


def test_a_detokenizer_failure_fails_its_request_and_still_delivers_the_others():
    def decode(ids):  # token 13 cannot be turned into text
        if 13 in ids:
            raise ValueError("token 13 has no text")
        return decode_ids(ids)

    runner = FakeRunner({"ends": [5, EOS], "breaks": [5, 13], "goes_on": [5, 6, 7]})
    core = core_with(runner, decode=decode)
    for request_id in ("ends", "breaks", "goes_on"):
        core.add(gen(request_id, max_new_tokens=3), "gen")
    core.step()
    second = {o.request_id: o for o in core.step()}  # "ends" finishes in the same update
    assert second["ends"].status is RequestStatus.FINISHED_EOS and second["ends"].text == "<5>"
    assert second["breaks"].status is RequestStatus.FINISHED_ERROR
    assert "token 13 has no text" in second["breaks"].error
    assert not second["goes_on"].finished
    assert run_all(core)["goes_on"][-1].text == "<5><6><7>"


def test_every_schedule_is_updated_even_when_every_request_fails():
    runner = PoisonRunner("bad")
    core = core_with(runner)
    core.add(gen("bad"), "gen")
    outputs = run_all(core)
    assert [o.status for o in outputs["bad"]] == [RequestStatus.FINISHED_ERROR]
    assert not core.has_work
    assert core.lanes["gen"].scheduler.num_free_slots == 64


def test_results_follow_request_ids_when_an_aborted_slot_is_reused():
    runner = FakeRunner({"old": [5] * 10, "new": [8, 9, EOS]})
    core = core_with(runner, max_num_seqs=1)
    core.add(gen("old"), "gen")
    core.step()
    assert core.abort("old")
    core.add(gen("new"), "gen")
    outputs = run_all(core)
    assert "old" not in outputs
    assert outputs["new"][-1].text == "<8><9>"
    assert runner.steps[1].freed_slots == [0] and runner.steps[1].prefill[0].slot == 0
    assert not core.abort("old")  # already gone: nothing happens


def test_a_non_streaming_request_hears_only_its_end():
    core = core_with(FakeRunner({"quiet": [5, 6, EOS], "loud": [5, 6, EOS]}))
    core.add(gen("quiet"), "gen", stream=False)
    core.add(gen("loud"), "gen", stream=True)
    outputs = run_all(core)
    assert [(o.text_delta, o.finished) for o in outputs["quiet"]] == [("", True)]
    assert outputs["quiet"][0].text == "<5><6>"
    assert [o.text_delta for o in outputs["loud"]] == ["<5>", "<6>", ""]


class LayeredRunner(FakeRunner):
    """A generator whose step has `num_layers` layers, calling `between_layers` after each."""

    def __init__(self, num_layers: int = 4, on_layer=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_layers, self.on_layer = num_layers, on_layer

    def execute(self, so, between_layers=None):
        for layer in range(self.num_layers):
            if self.on_layer is not None:
                self.on_layer(layer)
            if between_layers is not None:
                between_layers()
        return super().execute(so)


def test_a_classification_cuts_into_a_running_generation_step():
    events = []
    core = None

    def on_layer(layer):
        events.append(f"layer {layer}")
        if layer == 1 and not any(e.startswith("published") for e in events):
            core.poll = lambda: (core.add(cls("c"), "cls"), setattr(core, "poll", None))

    generator = LayeredRunner(on_layer=on_layer, scripts={"g": [5] * 3})
    classifier = FakeRunner()
    core = core_with(generator, classifier)
    core.publish = lambda outputs: events.append(f"published {[o.request_id for o in outputs]}")
    core.add(gen("g", max_new_tokens=3), "gen")
    core.step()
    assert events.index("published ['c']") == events.index("layer 1") + 1  # before layer 2 ran
    assert len(classifier.steps) == 1 and classifier.steps[0].one_pass[0].request_id == "c"


def test_classifications_run_first_in_a_round():
    generator, classifier = FakeRunner(), FakeRunner()
    order = []
    generator.execute = (lambda original: lambda so, between_layers=None: (
        order.append("gen"), original(so))[1])(generator.execute)
    classifier.execute = (lambda original: lambda so, between_layers=None: (
        order.append("cls"), original(so))[1])(classifier.execute)
    core = core_with(generator, classifier)
    core.add(gen("g", max_new_tokens=2), "gen")
    core.add(cls("c"), "cls")
    core.step()
    assert order == ["cls", "gen"]


def test_a_classification_at_the_start_of_a_round_is_published_before_the_generator_runs():
    events = []
    generator = LayeredRunner(on_layer=lambda layer: events.append(f"layer {layer}"), scripts={"g": [5] * 3})
    core = core_with(generator, FakeRunner())
    core.publish = lambda outputs: events.append(f"published {[o.request_id for o in outputs]}")
    core.add(gen("g", max_new_tokens=3), "gen")
    core.add(cls("c"), "cls")
    outputs = core.step()
    assert events[0] == "published ['c']" and "layer 0" in events
    assert "c" not in [o.request_id for o in outputs]  # heard once, not again at the step's end


def test_removing_a_reader_aborts_what_it_holds():
    core = core_with(FakeRunner(), FakeRunner())
    core.add(gen("g"), "gen")
    core.step()
    aborted = core.remove_lane("gen")
    assert [(o.request_id, o.status) for o in aborted] == [("g", RequestStatus.FINISHED_ABORTED)]
    assert "gen" not in core.lanes and not core.has_work


def test_a_step_that_runs_is_timed_for_the_watchdog():
    seen = []
    core = None

    def on_layer(layer):
        seen.append(core.seconds_in_step())

    core = core_with(LayeredRunner(on_layer=on_layer, num_layers=2))
    core.add(gen("g", max_new_tokens=1), "gen")
    assert core.seconds_in_step() == 0.0
    core.step()
    assert all(s > 0 for s in seen) and core.seconds_in_step() == 0.0


def test_fail_all_answers_every_unfinished_request():
    core = core_with(FakeRunner(), FakeRunner())
    core.add(gen("g"), "gen")
    core.add(cls("c"), "cls")
    outputs = core.fail_all("broken")
    assert {o.request_id: o.error for o in outputs} == {"g": "broken", "c": "broken"}
    assert core.num_unfinished == 0


def test_a_missing_result_is_an_error_not_a_hang():
    class SilentRunner(FakeRunner):
        def execute(self, so, between_layers=None):
            super().execute(so)
            return RunnerOutput()

    core = core_with(SilentRunner())
    core.add(gen("g"), "gen")
    (output,) = core.step()
    assert output.status is RequestStatus.FINISHED_ERROR and "no token" in output.error


class EmbedderRunner(FakeRunner):
    """An embedder whose forward pass raises for any batch that holds the poisoned input."""

    def __init__(self, poisoned: str) -> None:
        super().__init__()
        self.poisoned = poisoned

    def execute(self, so, between_layers=None):
        self.steps.append(so)
        if any(item.request_id == self.poisoned for item in so.one_pass):
            raise RuntimeError("cannot embed this input")
        out = RunnerOutput()
        for item in so.one_pass:
            out.embeddings[item.request_id] = [float(len(item.token_ids)), 1.0]
        return out


def test_one_embedding_of_a_batch_that_breaks_the_model_fails_alone():
    core = EngineCore()
    core.add_lane(Lane("emb", Scheduler(scheduler_config(), decode_ids), EmbedderRunner("bad"),
                       False))
    for request_id in ("first", "bad", "last"):
        core.add(fakes.embed(request_id, arrival_time=time.monotonic()), "emb")
    outputs = run_all(core)
    assert outputs["bad"][-1].status is RequestStatus.FINISHED_ERROR
    assert "cannot embed this input" in outputs["bad"][-1].error
    for request_id in ("first", "last"):
        assert outputs[request_id][-1].error is None
        assert outputs[request_id][-1].row == [4.0, 1.0]
