"""Request state and KV-slot bookkeeping."""
from __future__ import annotations

import pytest

from scheduler.request import Request, Task, RequestStatus
from scheduler.slots import SlotPool

FINISHED = [RequestStatus.FINISHED_LENGTH, RequestStatus.FINISHED_EOS, RequestStatus.FINISHED_STOP,
            RequestStatus.FINISHED_ABORTED, RequestStatus.FINISHED_ERROR,
            RequestStatus.FINISHED_ONE_PASS]


def test_finished_states_sort_after_live_ones():
    assert RequestStatus.WAITING < RequestStatus.RUNNING < min(FINISHED)
    assert not RequestStatus.WAITING.is_finished and not RequestStatus.RUNNING.is_finished
    assert all(s.is_finished for s in FINISHED)


def test_finish_reason_is_recorded_once():
    request = Request("r", Task.GENERATE, [5, 6])
    assert request.finish_reason is None
    assert request.finish(RequestStatus.FINISHED_EOS, now=3.0)
    assert not request.finish(RequestStatus.FINISHED_ABORTED, now=4.0, error="late")
    assert request.status is RequestStatus.FINISHED_EOS
    assert request.finish_reason == "eos_token"
    assert request.finish_time == 3.0 and request.error is None


@pytest.mark.parametrize("status, reason", [
    (RequestStatus.FINISHED_LENGTH, "length"), (RequestStatus.FINISHED_STOP, "stop_sequence"),
    (RequestStatus.FINISHED_ABORTED, "aborted"), (RequestStatus.FINISHED_ERROR, "error")])
def test_finish_reasons(status, reason):
    request = Request("r", Task.GENERATE, [5])
    request.finish(status, now=0.0)
    assert request.finish_reason == reason


def test_cannot_finish_into_a_live_state_nor_start_empty():
    with pytest.raises(ValueError):
        Request("r", Task.CLASSIFY, [5]).finish(RequestStatus.RUNNING, now=0.0)
    with pytest.raises(ValueError):
        Request("r", Task.CLASSIFY, [])


def test_slots_are_handed_out_lowest_first_and_reused():
    pool = SlotPool(3)
    assert [pool.allocate() for _ in range(3)] == [0, 1, 2]
    assert pool.num_free == 0
    with pytest.raises(RuntimeError):
        pool.allocate()
    pool.free(1)
    pool.free(0)
    assert pool.num_free == 2 and pool.num_used == 1
    assert pool.allocate() == 0
    assert pool.allocate() == 1


def test_freeing_a_slot_not_in_use_is_an_error():
    pool = SlotPool(2)
    with pytest.raises(ValueError):
        pool.free(0)
    pool.free(pool.allocate())
    with pytest.raises(ValueError):
        pool.free(0)
