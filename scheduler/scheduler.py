"""The continuous-batching scheduler of one reader: which of its requests run each step, and what
their results mean.

Each reader (a loaded model) has its own scheduler; EngineCore (takeoff/engine/core.py) steps them in
turn on one device, by the order in scheduler/policy.py. A generator reader's requests need a KV
slot; a classifier's or an embedder's need none. Within one scheduler, per step:

1. Decodes first. Every running generation gets exactly one decode token every step, whatever
   waits behind it, so a long prompt cannot stall a stream. Each decode costs 1 token of
   `max_num_batched_tokens`.
2. One-pass requests (classifications, embeddings: no KV slot) next, at most
   `max_classify_batch`, each costing its token count; then prefills (one free KV slot each; at
   most `max_num_seqs` generations hold slots), with what is left of the budget. The oldest
   waiting request of each kind is admitted even if it alone overflows the budget, so nothing
   starves: an oversized prompt runs alone, in one step.
3. Prefills are grouped by length: the oldest waiting prompt goes first, then the waiting prompts
   closest to its length (among the next `prefill_lookahead`), while the padded batch
   (`num_prompts * longest`) fits the budget. A burst of long prompts is so split over several
   bounded steps, and the running streams get their token between them.

Finishing: EOS (once `min_new_tokens` exist; the EOS token is kept in `output_ids` but is not
text), `max_new_tokens`, or a stop sequence (see detokenizer.py). A finished request leaves at
once: its slot is free for the very next schedule, and reported in that step's `freed_slots`.
A request still waiting after `queue_timeout_s` finishes with FINISHED_ERROR ("timed out in
queue").

Beam search (num_beams = k): k slots taken at once (policy.prefill_group; more than the reader
has: it fails when added), k decode tokens a step, its candidates taken by its BeamSearch
(scheduler/beams.py), whose choice is the next schedule's `beam_steps`; its text comes in one
piece at the end, its hypotheses in `sequences`; an abort frees all k slots.

The rules a caller keeps (EngineCore.step does, and tests/unit/test_engine_core.py holds them):
- `schedule()` and `update()` alternate: every `schedule()` is followed by exactly one
  `update()` with that step's output before the next `schedule()`, even when the step was empty
  (update also returns the requests that `schedule` found timed out).
- A slot freed while its step runs (an abort) may go to a new request at the next `schedule()`;
  that schedule lists it in `freed_slots`, and the runner drops the old sequence first.
- `add` and `abort` may come between any two calls; a request aborted while its step runs is
  skipped by that step's `update`.
- `update` never raises for one request's sake: a request whose result cannot be applied (no
  token, a runner error, a detokenizer failure) finishes with FINISHED_ERROR; the others go on.

How many requests may wait at all is decided before they get here: scheduler/admission.py.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Callable

from scheduler.beams import BeamSearch
from scheduler.detokenizer import IncrementalDetokenizer
from scheduler.output import (BeamCandidates, OnePassInput, PrefillInput, RunnerOutput,
                              SchedulerOutput)
from scheduler.policy import prefill_group
from scheduler.request import Request, RequestStatus, Task
from scheduler.slots import RunningTable

QUEUE_TIMEOUT_MESSAGE = "timed out in queue"


@dataclass(frozen=True)
class SchedulerConfig:
    """One reader's limits. No defaults for those the server sets: they are its flags, written
    once in takeoff/config.py, and the engine passes each of them here."""
    max_num_seqs: int  # KV slots: generations running at once
    max_num_batched_tokens: int  # per step: padded prefill + one-pass tokens + 1 per decode
    max_classify_batch: int  # one-pass requests (classifications, embeddings) per step
    queue_timeout_s: float  # a request still waiting after this finishes with an error
    prefill_lookahead: int = 64  # waiting prompts searched for ones of the head's length

    def __post_init__(self) -> None:
        for name in ("max_num_seqs", "max_num_batched_tokens", "max_classify_batch",
                     "prefill_lookahead"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.queue_timeout_s <= 0:
            raise ValueError("queue_timeout_s must be positive")


@dataclass
class RequestOutput:
    request: Request
    text_delta: str  # new text to send; "" when nothing is new or it is held back
    finished: bool  # the request is now finished; its status/finish_reason/error tell how
    new_token: bool = False  # a generation got a token this step


class Scheduler:
    def __init__(self, config: SchedulerConfig, decode: Callable[[list[int]], str]) -> None:
        self.config = config
        self._decode = decode
        self._running = RunningTable(config.max_num_seqs)  # generations holding slots
        self._requests: dict[str, Request] = {}  # every request not yet finished
        # Insertion-ordered dicts: FIFO queues with O(1) removal on abort.
        self._waiting_generate: dict[str, Request] = {}
        self._waiting_one_pass: dict[str, Request] = {}
        self._running_one_pass: dict[str, Request] = {}  # one-pass requests scheduled, results due
        # Finished outside update() (timed out in schedule(), refused by add()): returned by
        # the next update().
        self._unreported: list[RequestOutput] = []

    # ---- counters -------------------------------------------------------------------------
    @property
    def num_waiting(self) -> int:
        return len(self._waiting_generate) + len(self._waiting_one_pass)

    @property
    def num_running(self) -> int:
        return len(self._running.requests) + len(self._running_one_pass)

    @property
    def num_free_slots(self) -> int:
        return self._running.pool.num_free

    @property
    def has_work(self) -> bool:
        return bool(self.num_waiting or self.num_running or self._unreported)

    @property
    def has_freed_slots(self) -> bool:
        """Slots freed since the last schedule: the runner holds their sequences until a step
        tells it to drop them."""
        return self._running.has_freed

    @property
    def has_waiting_one_pass(self) -> bool:
        return bool(self._waiting_one_pass)

    def get(self, request_id: str) -> Request | None:
        return self._requests.get(request_id)

    def request_in_slot(self, slot: int) -> Request | None:
        return self._running.owner.get(slot)

    @property
    def request_ids(self) -> list[str]:
        """Every unfinished request, waiting or running."""
        return list(self._requests)

    # ---- adding and removing --------------------------------------------------------------
    def add(self, request: Request) -> None:
        if request.request_id in self._requests:
            raise ValueError(f"request id {request.request_id!r} is already in use")
        if request.status is not RequestStatus.WAITING:
            raise ValueError("only a new, waiting request can be added")
        self._requests[request.request_id] = request
        if request.task is not Task.GENERATE:
            self._waiting_one_pass[request.request_id] = request
        elif request.num_slots > self.config.max_num_seqs:
            self._unreported += self.fail([request.request_id], (
                f"num_beams {request.num_slots} needs {request.num_slots} KV slots at once; this "
                f"reader has {self.config.max_num_seqs} (max_num_seqs)"))
        else:
            request.detokenizer = IncrementalDetokenizer(self._decode, request.sampling.stop)
            request.beam = BeamSearch.of(request, self._decode)
            self._waiting_generate[request.request_id] = request

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
        """Finish these requests with an error; unknown or finished ids are skipped."""
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
        for queue in (self._waiting_generate, self._waiting_one_pass):
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
        self._waiting_one_pass.pop(request.request_id, None)
        self._running_one_pass.pop(request.request_id, None)
        self._running.release(request)

    # ---- schedule -------------------------------------------------------------------------
    def schedule(self, now: float | None = None) -> SchedulerOutput:
        now = _now(now)
        self._unreported.extend(self.expire(now))
        running = self._running
        output = SchedulerOutput(decode_slots=list(running.owner), freed_slots=running.take_freed(),
                                 beam_steps=[r.beam.pending for r in running.requests.values()
                                             if r.beam is not None and r.beam.pending])
        budget = self.config.max_num_batched_tokens - len(output.decode_slots)
        budget = self._admit_one_pass(output, budget, now)
        self._admit_prefill(output, budget, now)
        return output

    def _admit_one_pass(self, output: SchedulerOutput, budget: int, now: float) -> int:
        while self._waiting_one_pass and len(output.one_pass) < self.config.max_classify_batch:
            request = next(iter(self._waiting_one_pass.values()))
            cost = request.num_prompt_tokens
            if cost > budget and output.one_pass:
                break
            del self._waiting_one_pass[request.request_id]
            self._start(request, now)
            self._running_one_pass[request.request_id] = request
            output.one_pass.append(
                OnePassInput(request.request_id, request.prompt_ids, request.token_type_ids))
            budget -= cost
        return budget

    def _admit_prefill(self, output: SchedulerOutput, budget: int, now: float) -> None:
        chosen = self._prefill_group(budget)
        for request in chosen:
            del self._waiting_generate[request.request_id]
            self._start(request, now)
            self._running.admit(request)
            output.prefill.append(PrefillInput(request.request_id, request.slot, request.prompt_ids,
                                               request.sampling, request.slots[1:]))

    def _prefill_group(self, budget: int) -> list[Request]:
        num_free = self._running.pool.num_free
        if not self._waiting_generate or not num_free:
            return []
        window = list(itertools.islice(self._waiting_generate.values(),
                                       self.config.prefill_lookahead))
        return prefill_group(window, num_free, budget)

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
        outputs, self._unreported = self._unreported, []
        for item in scheduler_output.one_pass:
            request = self._running_one_pass.get(item.request_id)
            if request is not None:
                outputs.append(self._apply(request, runner_output, now))
        slots = [p.slot for p in scheduler_output.prefill] + scheduler_output.decode_slots
        owners = {id(r): r for r in map(self._running.owner.get, slots) if r is not None}
        for request in owners.values():  # a beam search holds several of these slots
            outputs.append(self._apply(request, runner_output, now))
        return outputs

    def _apply(self, request: Request, runner_output: RunnerOutput, now: float) -> RequestOutput:
        """One request's result; whatever goes wrong with it finishes it alone, with an error."""
        request_id = request.request_id
        try:
            if request_id in runner_output.errors:
                raise RuntimeError(runner_output.errors[request_id])
            if request.beam is not None:
                return self._advance_beams(request, runner_output.beam_candidates.get(request_id),
                                           now)
            if request.task is Task.GENERATE:
                return self._append_token(request, runner_output.next_token_ids.get(request_id),
                                          now)
            return self._finish_one_pass(request, runner_output, now)
        except Exception as exc:  # noqa: BLE001 - isolate this request, report why
            self._finish(request, RequestStatus.FINISHED_ERROR, now, str(exc) or type(exc).__name__)
            return RequestOutput(request, "", True)

    def _finish_one_pass(self, request: Request, runner_output: RunnerOutput,
                         now: float) -> RequestOutput:
        request_id = request.request_id
        if request.task is Task.CLASSIFY and request_id in runner_output.probabilities:
            request.probabilities = list(runner_output.probabilities[request_id])
        elif request.task is Task.EMBED and request_id in runner_output.embeddings:
            request.embedding = list(runner_output.embeddings[request_id])
        else:
            raise RuntimeError(f"the model gave no output for this {request.task.value} request")
        request.first_token_time = now
        self._finish(request, RequestStatus.FINISHED_ONE_PASS, now)
        return RequestOutput(request, "", True)

    def _append_token(self, request: Request, token_id: int | None, now: float) -> RequestOutput:
        if token_id is None:
            raise RuntimeError("the generator gave no token")
        if request.first_token_time is None:
            request.first_token_time = now
        request.previous_token_time, request.last_token_time = request.last_token_time, now
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
        return RequestOutput(request, delta, request.is_finished, new_token=True)

    def _advance_beams(self, request: Request, candidates: BeamCandidates | None,
                       now: float) -> RequestOutput:
        """One step of a beam search; when it ends, its best text goes out in one piece."""
        if candidates is None:
            raise RuntimeError("the generator gave no beam candidates")
        request.first_token_time = request.first_token_time or now
        request.beam.step(candidates)
        if not request.beam.is_done:
            return RequestOutput(request, "", False)
        request.take_sequences(request.beam.results())
        self._finish(request, request.sequences[0].status, now)
        return RequestOutput(request, request.text, True)


def _now(now: float | None) -> float:
    return time.monotonic() if now is None else now
