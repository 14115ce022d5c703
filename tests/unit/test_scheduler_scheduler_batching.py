"""Continuous batching and the shared per-step budget, with a fabricated runner."""
from __future__ import annotations

from scheduler.scheduler import Scheduler
from tests.unit.fakes import EOS, FakeRunner, cls, decode_ids, gen, scheduler_config, step


def make(**config) -> Scheduler:
    return Scheduler(scheduler_config(**config), decode_ids)


def test_generations_join_and_leave_the_running_batch_every_step():
    sched = make(max_num_seqs=2)
    runner = FakeRunner({"a": [5, EOS], "b": [5, 5, 5, EOS], "c": [5, EOS]})
    for rid in "abc":
        sched.add(gen(rid))
    so, out = step(sched, runner)
    assert [(p.request_id, p.slot) for p in so.prefill] == [("a", 0), ("b", 1)]
    assert so.decode_slots == [] and sched.num_waiting == 1  # c: no slot free
    so, out = step(sched, runner)
    assert so.decode_slots == [0, 1]
    assert [(o.request.request_id, o.finished) for o in out] == [("a", True), ("b", False)]
    assert sched.num_free_slots == 1  # a left at once
    so, out = step(sched, runner)
    # c takes a's slot in the very next step and joins b, which keeps decoding.
    assert so.freed_slots == [0]
    assert [(p.request_id, p.slot) for p in so.prefill] == [("c", 0)]
    assert so.decode_slots == [1]
    so, out = step(sched, runner)
    assert so.decode_slots == [1, 0]  # join order: b before c
    assert {o.request.request_id: o.finished for o in out} == {"b": True, "c": True}
    assert not sched.has_work and sched.num_free_slots == 2
    so, _ = step(sched, runner)
    assert so.is_empty and sorted(so.freed_slots) == [0, 1]


def test_max_num_seqs_bounds_the_running_batch():
    sched = make(max_num_seqs=3)
    runner = FakeRunner()
    for i in range(10):
        sched.add(gen(f"g{i}"))
    for _ in range(5):
        so, _ = step(sched, runner)
        assert len(so.prefill) + len(so.decode_slots) <= 3
    assert sched.num_running == 3 and sched.num_free_slots == 0 and sched.num_waiting == 7


def test_token_budget_counts_prefill_tokens_and_one_per_decode():
    sched = make(max_num_seqs=16, max_num_batched_tokens=25)
    runner = FakeRunner()
    for i in range(7):
        sched.add(gen(f"g{i}", num_prompt=10))
    so, _ = step(sched, runner)
    assert [p.request_id for p in so.prefill] == ["g0", "g1"]  # 20 of 25 tokens; a third: 30
    so, _ = step(sched, runner)
    assert so.decode_slots == [0, 1]
    assert [p.request_id for p in so.prefill] == ["g2", "g3"]  # 2 decodes + 20 = 22
    so, _ = step(sched, runner)
    assert len(so.decode_slots) == 4 and [p.request_id for p in so.prefill] == ["g4", "g5"]
    assert sched.num_waiting == 1  # g6 would make it 34
    so, _ = step(sched, runner)
    assert len(so.decode_slots) == 6 and [p.request_id for p in so.prefill] == ["g6"]
    for i in range(5, 30):
        sched.add(cls(f"c{i}", num_tokens=1))
    so, _ = step(sched, runner)
    assert len(so.decode_slots) + so.num_prefill_tokens + len(so.one_pass) <= 25


def test_classify_batch_is_bounded():
    sched = make(max_classify_batch=32)
    runner = FakeRunner()
    for i in range(100):
        sched.add(cls(f"c{i}"))
    sizes = []
    while sched.has_work:
        so, out = step(sched, runner)
        sizes.append(len(so.one_pass))
        assert all(o.finished and o.request.probabilities == [0.25, 0.75] for o in out)
    assert sizes == [32, 32, 32, 4]


def test_classification_burst_does_not_stall_running_streams():
    sched = make(max_num_seqs=4, max_num_batched_tokens=64, max_classify_batch=32)
    runner = FakeRunner()
    streams = [gen(f"g{i}", max_new_tokens=20) for i in range(3)]
    for request in streams:
        sched.add(request)
    step(sched, runner)
    for i in range(100):
        sched.add(cls(f"c{i}", num_tokens=30))  # 3000 tokens of classification waiting
    for n in range(2, 21):
        so, out = step(sched, runner)
        assert sorted(so.decode_slots) == [0, 1, 2]
        assert all(r.num_output_tokens == n for r in streams)  # one token each, every step
    assert all(r.finish_reason == "length" for r in streams)


def test_steady_decodes_and_new_streams_do_not_starve_classification():
    # Decodes alone fill the budget; new generations keep arriving; classification still runs.
    sched = make(max_num_seqs=6, max_num_batched_tokens=6, max_classify_batch=8)
    runner = FakeRunner()
    for i in range(4):
        sched.add(gen(f"long{i}", num_prompt=1, max_new_tokens=1000))
    step(sched, runner)
    waited = {}
    num_prefills = 0
    for t in range(1, 41):
        sched.add(gen(f"new{t}", max_new_tokens=2))  # short streams: slots keep freeing up
        if t % 3 == 0:
            sched.add(cls(f"c{t}"))
            waited[f"c{t}"] = 0
        so, _ = step(sched, runner)
        assert len(so.decode_slots) >= 4
        num_prefills += len(so.prefill)
        for item in so.one_pass:
            waited.pop(item.request_id)
        for rid in waited:
            waited[rid] += 1
            assert waited[rid] < 2, f"{rid} waited more than two steps"
    assert not waited
    assert num_prefills >= 15  # new streams kept being admitted meanwhile


def test_classification_backlog_does_not_starve_new_streams():
    sched = make(max_num_seqs=8, max_num_batched_tokens=64, max_classify_batch=32)
    runner = FakeRunner()
    for i in range(200):
        sched.add(cls(f"c{i}", num_tokens=64))  # each alone fills the budget
    step(sched, runner)
    sched.add(gen("g", num_prompt=8))
    first_two = [step(sched, runner)[0] for _ in range(2)]
    assert any(p.request_id == "g" for so in first_two for p in so.prefill)
    assert sum(len(so.one_pass) for so in first_two) >= 1


def test_huge_prefill_runs_alone_beside_the_decodes_and_never_starves():
    sched = make(max_num_seqs=8, max_num_batched_tokens=100)
    runner = FakeRunner()
    for i in range(2):
        sched.add(gen(f"s{i}", max_new_tokens=50))
    step(sched, runner)
    sched.add(gen("huge", num_prompt=5000))
    sched.add(gen("small", num_prompt=4))
    so, _ = step(sched, runner)
    assert so.decode_slots == [0, 1]  # the streams still get their token this step
    assert [p.request_id for p in so.prefill] == ["huge"]  # admitted alone, over budget
    so, _ = step(sched, runner)
    assert so.decode_slots == [0, 1, 2] and [p.request_id for p in so.prefill] == ["small"]


def test_prefill_is_admitted_in_arrival_order():
    sched = make(max_num_seqs=2)
    runner = FakeRunner()
    for rid in ["x", "y", "z"]:
        sched.add(gen(rid, max_new_tokens=1))
    order = []
    while sched.has_work:
        so, _ = step(sched, runner)
        order += [p.request_id for p in so.prefill]
    assert order == ["x", "y", "z"]


def test_prompts_of_similar_length_prefill_together_and_a_long_batch_is_split():
    sched = make(max_num_seqs=8, max_num_batched_tokens=300)
    runner = FakeRunner()
    for i, length in enumerate([100, 10, 95, 12, 90, 11]):
        sched.add(gen(f"p{i}-{length}", num_prompt=length))
    so, _ = step(sched, runner)
    assert [p.request_id for p in so.prefill] == ["p0-100", "p2-95", "p4-90"]  # 3 x 100 padded
    assert so.num_prefill_tokens == 300
    so, _ = step(sched, runner)  # the short ones, with the three decodes
    assert [p.request_id for p in so.prefill] == ["p1-10", "p3-12", "p5-11"]
