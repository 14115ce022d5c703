"""The continuous-batching scheduler: which requests run each step, and what their results mean.

Policy: one token budget per step, shared by both models.

1. Decodes first. Every running generation gets exactly one decode token every step, whatever
   waits behind it, so neither a classification burst nor a long prompt can stall a stream.
   Each decode costs 1 token of `max_num_batched_tokens`.
2. The rest of the budget goes to waiting work of two kinds: classification (at most
   `max_classify_batch` requests, each costing its token count) and prefills (one free KV slot
   each, costing the prompt length; at most `max_num_seqs` generations hold slots). Both are
   admitted first-come first-served within their kind, while they fit in the remaining budget.
3. When both kinds wait, they take turns going first. The kind going first is admitted even if
   its head request alone overflows the budget, so a prompt longer than the budget, or a budget
   eaten by decodes, delays other work by at most one (bounded) step but never starves. (If
   the first kind can take nothing, e.g. no KV slot is free, the guarantee passes to the other.)
   Alternating means a steady stream of prefills cannot starve classification, nor a burst of
   classification starve new streams: each kind gets a turn at least every other step.

Why not a fixed reservation per kind: with alternation an idle kind costs the other nothing,
and the worst case (one kind waits two steps) is easy to state and to test.

Finishing: EOS (once `min_new_tokens` exist; the EOS token is kept in `output_ids` but is not
text), `max_new_tokens`, or a stop sequence (see detokenizer.py). A finished request leaves at
once: its slot is free for this very next schedule, and reported in that step's `freed_slots`.
A request still waiting after `queue_timeout_s` finishes with FINISHED_ERROR ("timed out in
queue"); `schedule` notices and the following `update` returns it, so call `update` after every
`schedule`, even an empty one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from scheduler.detokenizer import IncrementalDetokenizer
from scheduler.output import ClassifyInput, PrefillInput, RunnerOutput, SchedulerOutput
from scheduler.request import Request, RequestKind, RequestStatus
from scheduler.slots import SlotPool

QUEUE_TIMEOUT_MESSAGE = "timed out in queue"


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int = 64  # KV slots: generations running at once
    max_num_batched_tokens: int = 4096  # per step: prefill + classify tokens + 1 per decode
    max_classify_batch: int = 32  # classification requests per step
    max_queue: int = 256  # waiting requests (both kinds) before add() refuses
    queue_timeout_s: float = 60.0  # a request still waiting after this finishes with an error

    def __post_init__(self) -> None:
        for name in ("max_num_seqs", "max_num_batched_tokens", "max_classify_batch", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.queue_timeout_s <= 0:
            raise ValueError("queue_timeout_s must be positive")


class QueueFullError(Exception):
    """The waiting queue holds max_queue requests; the caller should retry later."""


@dataclass
class RequestOutput:
    request: Request
    text_delta: str  # new text to send; "" when nothing is new or it is held back
    finished: bool  # the request is now finished; its status/finish_reason/error tell how


class Scheduler:
    def __init__(self, config: SchedulerConfig, decode: Callable[[list[int]], str]) -> None:
        self.config = config
        self._decode = decode
        self._slots = SlotPool(config.max_num_seqs)
        self._requests: dict[str, Request] = {}  # every request not yet finished
        # Insertion-ordered dicts: FIFO queues with O(1) removal on abort.
        self._waiting_generate: dict[str, Request] = {}
        self._waiting_classify: dict[str, Request] = {}
        self._slot_owner: dict[int, Request] = {}  # running generations, in join order
        self._classifying: dict[str, Request] = {}  # classifications scheduled, results due
        self._freed_slots: list[int] = []  # freed since the last schedule
        self._expired: list[RequestOutput] = []  # timed out in schedule(), returned by update()
        self._classify_first = True  # whose turn it is when both kinds wait

    # ---- counters -------------------------------------------------------------------------
    @property
    def num_waiting(self) -> int:
        return len(self._waiting_generate) + len(self._waiting_classify)

    @property
    def num_running(self) -> int:
        return len(self._slot_owner) + len(self._classifying)

    @property
    def num_free_slots(self) -> int:
        return self._slots.num_free

    @property
    def has_work(self) -> bool:
        return bool(self.num_waiting or self.num_running or self._expired)

    def get(self, request_id: str) -> Request | None:
        return self._requests.get(request_id)

    # ---- adding and removing --------------------------------------------------------------
    def add(self, request: Request) -> None:
        if request.request_id in self._requests:
            raise ValueError(f"request id {request.request_id!r} is already in use")
        if request.status is not RequestStatus.WAITING:
            raise ValueError("only a new, waiting request can be added")
        if self.num_waiting >= self.config.max_queue:
            raise QueueFullError(f"{self.num_waiting} requests are already waiting")
        self._requests[request.request_id] = request
        if request.kind is RequestKind.GENERATE:
            request.detokenizer = IncrementalDetokenizer(self._decode, request.sampling.stop)
            self._waiting_generate[request.request_id] = request
        else:
            self._waiting_classify[request.request_id] = request

    def abort(self, request_id: str, now: float | None = None) -> Request | None:
        """Finish a request as aborted, in whatever state it is. Returns it, or None when it is
        unknown or already finished (then nothing changes)."""
        request = self._requests.get(request_id)
        if request is None:
            return None
        self._finish(request, RequestStatus.FINISHED_ABORTED, _now(now))
        return request

    def fail(self, request_ids: list[str], message: str,
             now: float | None = None) -> list[RequestOutput]:
        """Finish these requests with an error (their step raised); unknown ids are skipped."""
        outputs = []
        for request_id in request_ids:
            request = self._requests.get(request_id)
            if request is not None:
                self._finish(request, RequestStatus.FINISHED_ERROR, _now(now), error=message)
                outputs.append(RequestOutput(request, "", True))
        return outputs

    def expire(self, now: float | None = None) -> list[RequestOutput]:
        """Finish every request that has waited longer than queue_timeout_s."""
        now = _now(now)
        deadline = now - self.config.queue_timeout_s
        outputs = []
        for queue in (self._waiting_generate, self._waiting_classify):
            for request in [r for r in queue.values() if r.arrival_time < deadline]:
                self._finish(request, RequestStatus.FINISHED_ERROR, now, QUEUE_TIMEOUT_MESSAGE)
                outputs.append(RequestOutput(request, "", True))
        return outputs

    def _finish(self, request: Request, status: RequestStatus, now: float,
                error: str | None = None) -> None:
        if not request.finish(status, now, error):
            return
        self._requests.pop(request.request_id, None)
        self._waiting_generate.pop(request.request_id, None)
        self._waiting_classify.pop(request.request_id, None)
        self._classifying.pop(request.request_id, None)
        if request.slot is not None:
            del self._slot_owner[request.slot]
            self._slots.free(request.slot)
            self._freed_slots.append(request.slot)

    # ---- schedule -------------------------------------------------------------------------
    def schedule(self, now: float | None = None) -> SchedulerOutput:
        now = _now(now)
        self._expired.extend(self.expire(now))
        output = SchedulerOutput(decode_slots=list(self._slot_owner), freed_slots=self._freed_slots)
        self._freed_slots = []
        budget = self.config.max_num_batched_tokens - len(output.decode_slots)
        first, second = self._admission_order()
        budget = first(output, budget, now, at_least_one=True)
        # If the first kind could take nothing (no free slot), the second gets the guarantee.
        second(output, budget, now, at_least_one=not (output.classify or output.prefill))
        return output

    def _admission_order(self) -> tuple[Callable, Callable]:
        """Classification and prefill take turns going first while both wait; a kind that
        waits alone always goes first."""
        if self._waiting_generate and self._waiting_classify:
            classify_first = self._classify_first
            self._classify_first = not classify_first
        else:
            classify_first = bool(self._waiting_classify)
        if classify_first:
            return self._admit_classify, self._admit_prefill
        return self._admit_prefill, self._admit_classify

    def _admit_classify(self, output: SchedulerOutput, budget: int, now: float,
                        at_least_one: bool) -> int:
        while self._waiting_classify and len(output.classify) < self.config.max_classify_batch:
            request = next(iter(self._waiting_classify.values()))
            cost = request.num_prompt_tokens
            if cost > budget and not (at_least_one and not output.classify):
                break
            del self._waiting_classify[request.request_id]
            self._start(request, now)
            self._classifying[request.request_id] = request
            output.classify.append(
                ClassifyInput(request.request_id, request.prompt_ids, request.token_type_ids))
            budget -= cost
        return budget

    def _admit_prefill(self, output: SchedulerOutput, budget: int, now: float,
                       at_least_one: bool) -> int:
        while self._waiting_generate and self._slots.num_free:
            request = next(iter(self._waiting_generate.values()))
            cost = request.num_prompt_tokens
            if cost > budget and not (at_least_one and not output.prefill):
                break
            del self._waiting_generate[request.request_id]
            self._start(request, now)
            request.slot = self._slots.allocate()
            self._slot_owner[request.slot] = request
            output.prefill.append(
                PrefillInput(request.request_id, request.slot, request.prompt_ids, request.sampling))
            budget -= cost
        return budget

    @staticmethod
    def _start(request: Request, now: float) -> None:
        request.status = RequestStatus.RUNNING
        request.first_scheduled_time = now

    # ---- update ---------------------------------------------------------------------------
    def update(self, scheduler_output: SchedulerOutput, runner_output: RunnerOutput,
               now: float | None = None) -> list[RequestOutput]:
        """Apply one step's results; also returns the requests `schedule` found timed out.
        Requests aborted while the step ran are skipped."""
        now = _now(now)
        outputs, self._expired = self._expired, []
        for item in scheduler_output.classify:
            request = self._classifying.get(item.request_id)
            if request is not None:
                outputs.append(self._finish_classify(request, runner_output, now))
        slots = [p.slot for p in scheduler_output.prefill] + scheduler_output.decode_slots
        for slot in slots:
            request = self._slot_owner.get(slot)
            if request is not None:
                outputs.append(self._append_token(request, runner_output.next_token_ids.get(slot),
                                                  now))
        return outputs

    def _finish_classify(self, request: Request, runner_output: RunnerOutput,
                         now: float) -> RequestOutput:
        probabilities = runner_output.probabilities.get(request.request_id)
        if probabilities is None:
            self._finish(request, RequestStatus.FINISHED_ERROR, now, "the classifier gave no output")
        else:
            request.probabilities = list(probabilities)
            request.first_token_time = now
            self._finish(request, RequestStatus.FINISHED_CLASSIFIED, now)
        return RequestOutput(request, "", True)

    def _append_token(self, request: Request, token_id: int | None, now: float) -> RequestOutput:
        if token_id is None:
            self._finish(request, RequestStatus.FINISHED_ERROR, now, "the generator gave no token")
            return RequestOutput(request, "", True)
        if request.first_token_time is None:
            request.first_token_time = now
        sampling = request.sampling
        is_eos = (token_id == request.eos_token_id
                  and len(request.output_ids) >= sampling.min_new_tokens)
        request.output_ids.append(token_id)
        at_length = len(request.output_ids) >= sampling.max_new_tokens
        text_ids = request.output_ids[:-1] if is_eos else request.output_ids
        detokenizer = request.detokenizer
        delta = detokenizer.step(text_ids, final=is_eos or at_length)
        request.text += delta
        if detokenizer.stopped:
            self._finish(request, RequestStatus.FINISHED_STOP, now)
        elif is_eos:
            self._finish(request, RequestStatus.FINISHED_EOS, now)
        elif at_length:
            self._finish(request, RequestStatus.FINISHED_LENGTH, now)
        return RequestOutput(request, delta, request.is_finished)


def _now(now: float | None) -> float:
    return time.monotonic() if now is None else now
