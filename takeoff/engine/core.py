"""EngineCore: the synchronous heart of the server. `step()` is schedule -> execute -> update for
every reader with work, and returns what came out, keyed by request id.

Rules (held by tests/unit/test_engine_core.py):
- One thread calls EngineCore, never two: `add`, `abort`, `step` and `snapshot` are not
  thread-safe. The asyncio layer (takeoff/engine/engine.py) runs `step()` on its engine thread
  (takeoff/engine/thread.py) and hands requests over through `poll`, a callback the core calls
  at the start of each step and between model layers; other threads read only the CoreSnapshot
  that thread copies out after each step, and `seconds_in_step()`.
- A reader's `schedule()` is always followed by its `update()` within the same `step()`, even
  when the runner raised, so no request is ever left scheduled with nobody to finish it.
- A slot is reused only after the step that freed it has been updated: a reader's schedule()
  runs only inside step(), never while its own runner executes (the cut-in below schedules a
  reader without slots while a generator's runner executes), and the runner drops
  `freed_slots` first.
- Failures are per request. A request whose result cannot be applied finishes with an error in
  `update`; when a runner raises for a whole batch, its classifications, prefills and decodes are
  run again one at a time, and only those that fail alone are failed.
- The cut-in: between two layers of a generator's step, `poll` brings in waiting requests; the
  readers without KV slots (classifiers, embedders) that have one-pass requests waiting run a
  whole step right there, nested in the generator's, and its results are published at once
  (`publish`), so a classification never waits for a whole generation step. A one-pass step at
  the start of a round is published before the round's generator steps, for the same reason.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from scheduler.beams import BeamSequence
from scheduler.output import RunnerOutput, SchedulerOutput
from scheduler.policy import round_order
from scheduler.request import Request, RequestStatus
from scheduler.scheduler import RequestOutput, Scheduler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineOutput:
    """What one request produced in one step, copied out of the core for another thread."""
    request_id: str
    text_delta: str  # new text (generation); "" otherwise
    finished: bool
    status: RequestStatus
    text: str = ""  # the whole text so far (generation)
    error: str | None = None
    num_prompt_tokens: int = 0
    num_output_tokens: int = 0  # the final EOS included
    row: list[float] | None = None  # a one-pass result: label probabilities, or an embedding
    never_scheduled: bool = False  # it finished while still waiting (a queue timeout)
    finish_reason: str | None = None  # Request.finish_reason, once finished
    # A finished beam search: its num_return_sequences hypotheses (token ids, text, score,
    # finish reason), best first; `text` is the first one's. Empty otherwise.
    sequences: tuple[BeamSequence, ...] = ()


@dataclass(frozen=True)
class CoreSnapshot:
    """The counts other threads may read: the engine thread copies them out after each step,
    so that nothing but that thread ever reads the core's own state."""
    num_running: int = 0  # requests in the running batches (generations and one-pass)
    num_slots_in_use: int = 0  # KV slots held by generations
    num_slots: int = 0  # KV slots in all
    num_unfinished: int = 0  # requests in the core, waiting or running


@dataclass
class Lane:
    """One reader inside the core: its scheduler and the runner that executes its steps."""
    reader_id: str
    scheduler: Scheduler
    runner: Any  # execute(SchedulerOutput, between_layers=None) -> RunnerOutput
    holds_slots: bool  # a generator: its requests hold KV slots across steps


class EngineCore:
    def __init__(self, metrics=None) -> None:
        self.metrics = metrics  # takeoff.engine.metrics.Metrics, or None
        self.lanes: dict[str, Lane] = {}
        self.poll: Callable[[], None] | None = None  # brings in requests that arrived meanwhile
        self.publish: Callable[[list[EngineOutput]], None] | None = None  # mid-step results
        self._lane_of: dict[str, Lane] = {}  # unfinished request id -> its lane
        self._streaming: set[str] = set()  # requests that want every text piece, not just the end
        self._num_rounds = 0
        self._depth = 0  # > 0 while a runner executes (nested when a classification cuts in)
        self._step_started: float | None = None  # when the outermost execute began
        self._early: list[EngineOutput] = []  # cut-in results, when there is no `publish`

    # ---- readers and requests -------------------------------------------------------------
    def add_lane(self, lane: Lane) -> None:
        if lane.reader_id in self.lanes:
            raise ValueError(f"reader {lane.reader_id!r} is already in the core")
        self.lanes[lane.reader_id] = lane

    def remove_lane(self, reader_id: str) -> list[EngineOutput]:
        """Drop a reader, aborting whatever it still holds (the caller drains it first)."""
        lane = self.lanes.pop(reader_id)
        aborted = []
        for request_id in lane.scheduler.request_ids:
            request = lane.scheduler.abort(request_id)
            aborted.append(self._forget(request))
        return aborted

    def add(self, request: Request, reader_id: str, stream: bool = True) -> None:
        lane = self.lanes[reader_id]
        lane.scheduler.add(request)
        self._lane_of[request.request_id] = lane
        if stream:
            self._streaming.add(request.request_id)

    def abort(self, request_id: str) -> bool:
        """Forget a request in any state; its slot is free for the next step. False when it
        had already finished (or was never here)."""
        lane = self._lane_of.get(request_id)
        if lane is None:
            return False
        lane.scheduler.abort(request_id)
        self._lane_of.pop(request_id)
        self._streaming.discard(request_id)
        self._count_finished("aborted")
        return True

    def fail_all(self, message: str) -> list[EngineOutput]:
        """Finish every unfinished request with an error (the core itself broke)."""
        outputs = []
        for lane in self.lanes.values():
            outputs += self._outputs(lane.scheduler.fail(lane.scheduler.request_ids, message))
        return outputs

    @property
    def has_work(self) -> bool:
        return any(_has_work(lane) for lane in self.lanes.values())

    @property
    def num_unfinished(self) -> int:
        return len(self._lane_of)

    def snapshot(self) -> CoreSnapshot:
        generators = [lane.scheduler for lane in self.lanes.values() if lane.holds_slots]
        num_slots = sum(scheduler.config.max_num_seqs for scheduler in generators)
        return CoreSnapshot(
            num_running=sum(lane.scheduler.num_running for lane in self.lanes.values()),
            num_slots_in_use=num_slots - sum(s.num_free_slots for s in generators),
            num_slots=num_slots, num_unfinished=len(self._lane_of))

    def seconds_in_step(self, now: float | None = None) -> float:
        """How long the running step has been executing (0 between steps). The one read of the
        core that another thread makes (the /ready watchdog): a stuck step publishes nothing, so
        this reads the one float it wrote when the step began."""
        started = self._step_started
        return 0.0 if started is None else (now or time.monotonic()) - started

    # ---- the step -------------------------------------------------------------------------
    def step(self) -> list[EngineOutput]:
        """One round: every reader with work runs one step (order: scheduler/policy.py)."""
        if self.poll is not None:
            self.poll()
        lanes = list(self.lanes.values())
        order = round_order([lane for lane in lanes if not lane.holds_slots],
                            [lane for lane in lanes if lane.holds_slots], self._num_rounds)
        self._num_rounds += 1
        outputs: list[EngineOutput] = []
        for lane in order:
            if lane.reader_id in self.lanes and _has_work(lane):
                if lane.holds_slots:
                    outputs += self._step_lane(lane)
                else:  # not after the generators' steps that follow
                    self._hand_over(self._step_lane(lane))
        outputs, self._early = self._early + outputs, []
        return outputs

    def _step_lane(self, lane: Lane) -> list[EngineOutput]:
        scheduler_output = lane.scheduler.schedule()
        runner_output = RunnerOutput()
        if not scheduler_output.is_empty or scheduler_output.freed_slots:
            runner_output = self._execute(lane, scheduler_output)
        self._observe_step(runner_output)
        return self._outputs(lane.scheduler.update(scheduler_output, runner_output))

    def _execute(self, lane: Lane, scheduler_output: SchedulerOutput) -> RunnerOutput:
        hook = self._between_layers if lane.holds_slots and self._depth == 0 else None
        if self._depth == 0:
            self._step_started = time.monotonic()
        self._depth += 1
        try:
            return lane.runner.execute(scheduler_output, between_layers=hook)
        except Exception:  # noqa: BLE001 - find the requests that broke it, fail only those
            logger.exception("a step of reader %s failed; running its requests one at a time",
                             lane.reader_id)
            return self._execute_alone(lane, scheduler_output)
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._step_started = None

    def _execute_alone(self, lane: Lane, scheduler_output: SchedulerOutput) -> RunnerOutput:
        merged = RunnerOutput()
        for index, part in enumerate(_split(scheduler_output, lane.scheduler.request_in_slot)):
            if index == 0:
                part.freed_slots = scheduler_output.freed_slots
            try:
                result = lane.runner.execute(part)
            except Exception as exc:  # noqa: BLE001 - this request alone fails
                for request_id in self._request_ids(lane, part):
                    merged.errors[request_id] = f"the model failed on this request: {exc}"
                continue
            merged.merge(result)
        return merged

    @staticmethod
    def _request_ids(lane: Lane, part: SchedulerOutput) -> list[str]:
        decoding = [lane.scheduler.request_in_slot(slot) for slot in part.decode_slots]
        return part.request_ids + list(dict.fromkeys(r.request_id for r in decoding if r is not None))

    def _between_layers(self) -> None:
        """Called by a generator's runner after each layer: let waiting classifications cut in."""
        if self.poll is not None:
            self.poll()
        for lane in list(self.lanes.values()):
            if not lane.holds_slots and lane.scheduler.has_waiting_one_pass:
                self._hand_over(self._step_lane(lane))

    def _hand_over(self, outputs: list[EngineOutput]) -> None:
        """Results that must not wait for the rest of the step: published at once, or, with no
        `publish`, returned first by step()."""
        if self.publish is not None:
            self.publish(outputs)
        else:
            self._early += outputs

    # ---- outputs --------------------------------------------------------------------------
    def _outputs(self, request_outputs: list[RequestOutput]) -> list[EngineOutput]:
        outputs = []
        for item in request_outputs:
            request = item.request
            request_id = request.request_id
            if item.new_token:
                self._observe_token(request)
            if item.finished:
                self._lane_of.pop(request_id, None)
                self._count_finished(request.finish_reason or "unknown")
            elif not (item.text_delta and request_id in self._streaming):
                continue  # a non-streaming request hears only its end
            outputs.append(_engine_output(item, request_id in self._streaming))
            if item.finished:
                self._streaming.discard(request_id)
        return outputs

    def _forget(self, request: Request) -> EngineOutput:
        self._lane_of.pop(request.request_id, None)
        self._streaming.discard(request.request_id)
        return _engine_output(RequestOutput(request, "", True), False)

    def _observe_token(self, request: Request) -> None:
        if self.metrics is None:
            return
        if request.previous_token_time is None:
            self.metrics.time_to_first_token.observe(request.last_token_time - request.arrival_time)
        else:
            self.metrics.inter_token_latency.observe(
                request.last_token_time - request.previous_token_time)

    def _observe_step(self, runner_output: RunnerOutput) -> None:
        if self.metrics is None:
            return
        for kind, seconds in runner_output.step_seconds.items():
            self.metrics.step_duration.labels(kind).observe(seconds)
        beams = sum(len(c.beams) // 2 for c in runner_output.beam_candidates.values())
        self.metrics.generated_tokens.inc(len(runner_output.next_token_ids) + beams)

    def _count_finished(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.finished_requests.labels(reason).inc()


def _has_work(lane: Lane) -> bool:
    """Requests to run, or freed slots whose sequences the runner still holds: a step then
    drops them at once, not whenever the next request comes."""
    return lane.scheduler.has_work or lane.scheduler.has_freed_slots


def _split(scheduler_output: SchedulerOutput,
           request_in_slot: Callable[[int], Request | None]) -> list[SchedulerOutput]:
    """One SchedulerOutput per request: each one-pass request, prefill and decode on its own (a
    beam search's beams together, with its beam step)."""
    parts = [SchedulerOutput(one_pass=[item]) for item in scheduler_output.one_pass]
    parts += [SchedulerOutput(prefill=[item]) for item in scheduler_output.prefill]
    decodes: dict[object, SchedulerOutput] = {}
    steps = {step.request_id: step for step in scheduler_output.beam_steps}
    for slot in scheduler_output.decode_slots:
        request = request_in_slot(slot)
        key = slot if request is None else request.request_id
        part = decodes.setdefault(key, SchedulerOutput(beam_steps=[steps[key]] if key in steps else []))
        part.decode_slots.append(slot)
    return parts + list(decodes.values()) or [SchedulerOutput()]


def _engine_output(item: RequestOutput, streaming: bool) -> EngineOutput:
    request = item.request
    return EngineOutput(
        request_id=request.request_id, text_delta=item.text_delta if streaming else "",
        finished=item.finished, status=request.status, text=request.text if item.finished else "",
        error=request.error, num_prompt_tokens=request.num_prompt_tokens,
        num_output_tokens=request.num_output_tokens,
        row=request.probabilities if request.probabilities is not None else request.embedding,
        never_scheduled=request.first_scheduled_time is None, finish_reason=request.finish_reason,
        sequences=tuple(request.sequences))
