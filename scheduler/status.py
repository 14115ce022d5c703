"""The states a request goes through, and the finish reason each finished generation state
reports. Its own module so that a request and a beam search's hypotheses share them."""
from __future__ import annotations

import enum


class RequestStatus(enum.IntEnum):
    # Finished states sort after the live ones, so `status > RUNNING` means finished.
    WAITING = 0
    RUNNING = 1
    FINISHED_LENGTH = 2
    FINISHED_EOS = 3
    FINISHED_STOP = 4
    FINISHED_ABORTED = 5
    FINISHED_ERROR = 6
    FINISHED_ONE_PASS = 7  # a one-pass request (classification, embedding) whose result is in

    @property
    def is_finished(self) -> bool:
        return self > RequestStatus.RUNNING


# Why a generation ended, as the API reports it, by its finished state.
FINISH_REASONS = {
    RequestStatus.FINISHED_LENGTH: "length",
    RequestStatus.FINISHED_EOS: "eos_token",
    RequestStatus.FINISHED_STOP: "stop_sequence",
    RequestStatus.FINISHED_ABORTED: "aborted",
    RequestStatus.FINISHED_ERROR: "error",
}
