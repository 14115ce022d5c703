"""A request's life in the scheduler: queue timeout, abort and failure in every state,
finishing by EOS, length and stop sequence, and the text it streams."""
from __future__ import annotations

import pytest

from scheduler.output import RunnerOutput
from scheduler.request import RequestStatus
from scheduler.scheduler import Scheduler
from tests.unit.fakes import EOS, ByteTokenizer, FakeRunner, cls, decode_ids, gen, scheduler_config, \
    step


def make(decode=decode_ids, **config) -> Scheduler:
    return Scheduler(scheduler_config(**config), decode)


def run_to_end(sched, runner, now: float = 1.0) -> dict[str, list[str]]:
    """Step until idle; return each request's text deltas in order."""
    deltas: dict[str, list[str]] = {}
    while sched.has_work:
        for o in step(sched, runner, now)[1]:
            deltas.setdefault(o.request.request_id, []).append(o.text_delta)
    return deltas


def test_duplicate_request_id_is_refused():
    sched = make()
    sched.add(gen("same"))
    with pytest.raises(ValueError):
        sched.add(cls("same"))


def test_request_waiting_past_the_timeout_finishes_with_an_error():
    sched = make(max_num_seqs=1, queue_timeout_s=5.0)
    runner = FakeRunner()
    sched.add(gen("running", arrival_time=0.0))
    sched.add(gen("old", arrival_time=0.0))
    sched.add(cls("young", arrival_time=4.0))
    step(sched, runner, now=0.5)  # "running" takes the only slot; "young" is classified
    so, out = step(sched, runner, now=6.0)
    expired = [o for o in out if o.request.request_id == "old"]
    assert len(expired) == 1 and expired[0].finished
    assert expired[0].request.status is RequestStatus.FINISHED_ERROR
    assert expired[0].request.error == "timed out in queue"
    assert sched.num_waiting == 0 and sched.get("running").status is RequestStatus.RUNNING
    assert all(p.request_id != "old" for p in so.prefill)


def test_expire_reports_timeouts_without_a_step():
    sched = make(queue_timeout_s=1.0)
    sched.add(cls("a", arrival_time=0.0))
    sched.add(cls("b", arrival_time=5.0))
    out = sched.expire(now=5.5)
    assert [o.request.request_id for o in out] == ["a"]
    assert sched.num_waiting == 1


def test_abort_waiting_request_is_never_scheduled():
    sched = make(max_num_seqs=1)
    runner = FakeRunner()
    sched.add(gen("a"))
    sched.add(gen("b"))
    request = sched.abort("b")
    assert request.status is RequestStatus.FINISHED_ABORTED and request.finish_reason == "aborted"
    assert sched.num_waiting == 1
    run_to_end(sched, runner)
    assert [p.request_id for so in runner.steps for p in so.prefill] == ["a"]


def test_abort_running_request_frees_its_slot_for_the_next_step():
    sched = make(max_num_seqs=1)
    runner = FakeRunner()
    sched.add(gen("a"))
    sched.add(gen("b"))
    step(sched, runner)
    assert sched.num_free_slots == 0
    request = sched.abort("a")
    assert request.status is RequestStatus.FINISHED_ABORTED and sched.num_free_slots == 1
    so, _ = step(sched, runner)
    assert so.freed_slots == [0] and so.decode_slots == []
    assert [(p.request_id, p.slot) for p in so.prefill] == [("b", 0)]


def test_abort_of_finished_or_unknown_request_changes_nothing():
    sched = make()
    runner = FakeRunner({"a": [5, EOS]})
    sched.add(gen("a"))
    run_to_end(sched, runner)
    assert sched.abort("a") is None and sched.abort("never-seen") is None
    assert sched.num_free_slots == 64 and not sched.has_work


def test_abort_while_the_step_runs_drops_its_result():
    sched = make()
    runner = FakeRunner()
    sched.add(gen("g"))
    sched.add(cls("c"))
    so = sched.schedule(now=1.0)
    result = runner.execute(so)
    sched.abort("g")
    sched.abort("c")
    assert sched.update(so, result, now=1.0) == []
    assert sched.get("g") is None and not sched.has_work
    assert sched.schedule(now=1.0).freed_slots == [0]


def test_fail_finishes_requests_in_any_state_with_the_message():
    sched = make(max_num_seqs=1)
    runner = FakeRunner()
    sched.add(gen("running"))
    sched.add(gen("waiting"))
    step(sched, runner)
    out = sched.fail(["running", "waiting", "unknown"], "device error")
    assert [(o.request.request_id, o.finished) for o in out] == [("running", True), ("waiting", True)]
    assert all(o.request.finish_reason == "error" and o.request.error == "device error" for o in out)
    assert sched.num_free_slots == 1 and not sched.has_work


def test_missing_runner_output_is_an_error_not_a_hang():
    sched = make()
    sched.add(gen("g"))
    sched.add(cls("c"))
    so = sched.schedule(now=1.0)
    out = sched.update(so, RunnerOutput(), now=1.0)
    assert {o.request.request_id: o.request.status for o in out} == {
        "g": RequestStatus.FINISHED_ERROR, "c": RequestStatus.FINISHED_ERROR}
    assert sched.num_free_slots == 64


def test_eos_finishes_and_is_not_text():
    sched = make()
    runner = FakeRunner({"g": [5, 6, EOS, 9]})
    sched.add(gen("g"))
    request = sched.get("g")
    deltas = run_to_end(sched, runner)
    assert request.finish_reason == "eos_token"
    assert request.output_ids == [5, 6, EOS]
    assert deltas["g"] == ["<5>", "<6>", ""] and request.text == "<5><6>"


def test_eos_before_min_new_tokens_does_not_finish():
    sched = make()
    runner = FakeRunner({"g": [EOS, 5, EOS]})
    sched.add(gen("g", min_new_tokens=2))
    request = sched.get("g")
    run_to_end(sched, runner)
    assert request.output_ids == [EOS, 5, EOS] and request.finish_reason == "eos_token"


def test_length_finishes_at_max_new_tokens():
    sched = make()
    runner = FakeRunner()
    sched.add(gen("g", max_new_tokens=3))
    request = sched.get("g")
    deltas = run_to_end(sched, runner)
    assert request.finish_reason == "length" and len(deltas["g"]) == 3
    assert request.text == "<7><7><7>"
    assert request.first_scheduled_time == 1.0 and request.finish_time == 1.0


def test_stop_sequence_through_the_scheduler():
    tok = ByteTokenizer()
    ids = tok.ids([b"Hi", b" th", b"ere", b"\n#", b"## rest"])
    sched = make(tok.decode)
    runner = FakeRunner({"g": ids})
    sched.add(gen("g", stop=("###",)))
    request = sched.get("g")
    deltas = run_to_end(sched, runner)
    assert deltas["g"] == ["Hi", " th", "ere", "\n", ""]
    assert request.text == "Hi there\n" and request.finish_reason == "stop_sequence"
    assert sched.num_free_slots == 64


def test_streamed_text_equals_full_decode_for_split_characters():
    tok = ByteTokenizer()
    text = "naïve café — 日本 😀!"
    data = text.encode()
    ids = tok.ids([data[i:i + 3] for i in range(0, len(data), 3)]) + [EOS]
    sched = make(tok.decode)
    runner = FakeRunner({"g": ids})
    sched.add(gen("g"))
    request = sched.get("g")
    deltas = run_to_end(sched, runner)
    assert "".join(deltas["g"]) == request.text == tok.decode(ids) == text
    assert request.finish_reason == "eos_token"
