"""Admission counts unfinished requests, so a burst on an idle reader gets a fixed answer."""
from __future__ import annotations

import pytest

from scheduler.admission import Admission


def test_an_idle_reader_admits_exactly_its_running_room_plus_its_queue_from_a_burst():
    admission = Admission(num_running_max=4, max_queue=4)
    answers = [admission.try_admit() for _ in range(30)]
    assert answers == [True] * 8 + [False] * 22
    admission.release()
    assert admission.try_admit() and not admission.try_admit()


def test_a_group_of_requests_is_admitted_whole_or_not_at_all():
    admission = Admission(num_running_max=2, max_queue=1)
    assert admission.try_admit(2)
    assert not admission.try_admit(2) and admission.num_unfinished == 2
    assert admission.try_admit(1) and admission.num_free == 0


def test_release_never_goes_below_zero():
    admission = Admission(num_running_max=1, max_queue=0)
    with pytest.raises(ValueError):
        admission.release()
