"""One request and the state it owns: task, status (scheduler/status.py), token ids, KV slots,
timing; and `Task`, the one name for what a model does, used from the loader to the management
API."""
from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING

from scheduler.sampling_params import SamplingParams
from scheduler.status import FINISH_REASONS, RequestStatus

if TYPE_CHECKING:
    from scheduler.beams import BeamSearch, BeamSequence
    from scheduler.detokenizer import IncrementalDetokenizer


class Task(enum.Enum):
    """What a model does, and so what its requests ask for."""
    GENERATE = "generate"  # owns a KV slot from prefill until it finishes
    CLASSIFY = "classify"  # one forward pass, no slot: label probabilities
    EMBED = "embed"  # one forward pass, no slot: a vector

    @property
    def holds_slots(self) -> bool:
        return self is Task.GENERATE


# The finish reason of a one-pass request, by task.
_ONE_PASS_REASONS = {Task.CLASSIFY: "classified", Task.EMBED: "embedded"}


class Request:
    def __init__(
        self,
        request_id: str,
        task: Task,
        prompt_ids: list[int],
        sampling: SamplingParams | None = None,
        token_type_ids: list[int] | None = None,
        eos_token_id: int | None = None,
        arrival_time: float | None = None,
    ) -> None:
        if not prompt_ids:
            raise ValueError("a request needs at least one prompt token")
        self.request_id = request_id
        self.task = task
        self.prompt_ids = list(prompt_ids)
        self.sampling = sampling if sampling is not None else SamplingParams()
        self.token_type_ids = token_type_ids
        self.eos_token_id = eos_token_id
        self.status = RequestStatus.WAITING
        self.output_ids: list[int] = []  # generated tokens, the final EOS included
        self.text = ""  # every piece of text sent so far, joined
        self.slots: list[int] = []  # KV slots held while running: one, or num_beams
        self.probabilities: list[float] | None = None  # classification result, label order
        self.embedding: list[float] | None = None  # embedding result
        self.error: str | None = None
        self.detokenizer: IncrementalDetokenizer | None = None  # set by the scheduler on add
        self.beam: BeamSearch | None = None  # a beam search's state, set by the scheduler on add
        # A finished beam search's num_return_sequences hypotheses, best first; output_ids and
        # text are the best one's.
        self.sequences: list[BeamSequence] = []
        # Clock: time.monotonic() seconds, the same clock Scheduler uses when `now` is omitted.
        self.arrival_time = time.monotonic() if arrival_time is None else arrival_time
        self.first_scheduled_time: float | None = None
        self.first_token_time: float | None = None
        self.last_token_time: float | None = None  # when the newest token came
        self.previous_token_time: float | None = None  # when the one before it came
        self.finish_time: float | None = None

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    @property
    def slot(self) -> int | None:
        """The first KV slot (a beam search's beam 0), or None."""
        return self.slots[0] if self.slots else None

    @property
    def num_slots(self) -> int:
        """KV slots this request needs at once: num_beams for a generation, none otherwise."""
        return self.sampling.num_beams if self.task.holds_slots else 0

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def num_output_tokens(self) -> int:
        """Generated tokens, EOS included; a beam search counts every sequence it returns."""
        if self.sequences:
            return sum(len(s.token_ids) for s in self.sequences)
        return len(self.output_ids)

    @property
    def finish_reason(self) -> str | None:
        """`length`, `eos_token`, `stop_sequence`, `aborted`, `error`, `classified` or
        `embedded` (a one-pass request's result is in), or None while unfinished."""
        if self.status is RequestStatus.FINISHED_ONE_PASS:
            return _ONE_PASS_REASONS[self.task]
        return FINISH_REASONS.get(self.status)

    def take_sequences(self, sequences: list[BeamSequence]) -> None:
        """A finished beam search's results, best first: the best one's ids and text become
        the request's."""
        self.sequences = list(sequences)
        self.output_ids, self.text = list(sequences[0].token_ids), sequences[0].text

    def finish(self, status: RequestStatus, now: float, error: str | None = None) -> bool:
        """Enter a terminal state. The first reason sticks; later calls return False."""
        if not status.is_finished:
            raise ValueError(f"{status.name} is not a finished state")
        if self.is_finished:
            return False
        self.status = status
        self.finish_time = now
        if error is not None:
            self.error = error
        return True

    def __repr__(self) -> str:
        return (f"Request({self.request_id!r}, {self.task.name}, {self.status.name}, "
                f"slot={self.slot}, prompt={len(self.prompt_ids)}, out={len(self.output_ids)})")
