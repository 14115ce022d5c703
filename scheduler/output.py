"""The one contract between the scheduler and the kernels: what to run this step, what came out.

Plain Python (lists, ints, floats); the runner in kernels/runner.py is the only code that turns
these into tensors. Results come back keyed by request id, never by slot: a slot may already
belong to another request by the time a result is read.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from scheduler.sampling_params import SamplingParams


@dataclass
class OnePassInput:
    """One forward pass with no slot: a classification, or an embedding on an embedder."""
    request_id: str
    token_ids: list[int]  # already tokenized and truncated, special tokens included
    token_type_ids: list[int] | None = None  # segment ids for text pairs; None: all zeros


@dataclass
class PrefillInput:
    request_id: str
    slot: int  # KV slot this sequence owns until it finishes (a beam search: its beam 0's)
    prompt_ids: list[int]  # encoder input, EOS included, len <= max_input_len
    sampling: SamplingParams
    extra_slots: list[int] = field(default_factory=list)  # a beam search: beams 1..num_beams-1

    @property
    def slots(self) -> list[int]:
        """Every slot of this request, beam order."""
        return [self.slot] + self.extra_slots


@dataclass
class BeamStep:
    """How a running beam search goes on (scheduler/beams.py chose it from the last candidates):
    before this step's decode, beam j becomes a copy of beam parents[j] plus token_ids[j]."""
    request_id: str
    parents: list[int]  # [num_beams] the beam (index into the last candidates' beams) each continues
    token_ids: list[int]  # [num_beams] the token each beam appends
    scores: list[float]  # [num_beams] each beam's cumulative log-probability (float32 values)
    num_generated: int  # tokens each beam holds once this is applied (a step run again skips it)


@dataclass
class BeamCandidates:
    """A beam search's 2 * num_beams best continuations of one step, best first."""
    beams: list[int]  # the beam each one continues
    token_ids: list[int]  # the token it appends
    scores: list[float]  # cumulative log-probability with that token (float32 values)


@dataclass
class SchedulerOutput:
    # One-pass requests to run this step: classifications or embeddings (no KV slot).
    one_pass: list[OnePassInput] = field(default_factory=list)
    # New generations: encoder pass, cross-attention K/V into `slot`, and their first token.
    prefill: list[PrefillInput] = field(default_factory=list)
    # Slots already holding a sequence that need exactly one more token each (a beam search's
    # every beam).
    decode_slots: list[int] = field(default_factory=list)
    # Running beam searches: how each one's beams continue, applied before they decode.
    beam_steps: list[BeamStep] = field(default_factory=list)
    # Slots whose sequences left since the last step (finished or aborted); the runner drops
    # their per-slot state before anything else in this step. The scheduler has already made
    # them free, and may hand one to a prefill of this very step.
    freed_slots: list[int] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.one_pass or self.prefill or self.decode_slots)

    @property
    def num_prefill_tokens(self) -> int:
        """Encoder positions this step computes: prefills are padded to the longest prompt."""
        if not self.prefill:
            return 0
        return len(self.prefill) * max(len(p.prompt_ids) for p in self.prefill)

    @property
    def request_ids(self) -> list[str]:
        """The requests whose results this step owes, except the decodes (the scheduler knows
        which request holds each decode slot)."""
        return [c.request_id for c in self.one_pass] + [p.request_id for p in self.prefill]


@dataclass
class RunnerOutput:
    # request_id -> one probability per label, in the classifier's label order.
    probabilities: dict[str, list[float]] = field(default_factory=dict)
    # request_id -> its vector (an embedder's one-pass requests).
    embeddings: dict[str, list[float]] = field(default_factory=dict)
    # request_id -> the token id chosen this step (one per prefilled or decoded sequence).
    next_token_ids: dict[str, int] = field(default_factory=dict)
    # request_id -> a beam search's candidates this step (instead of a token).
    beam_candidates: dict[str, BeamCandidates] = field(default_factory=dict)
    # request_id -> why this request alone could not run (its input or output broke); the
    # others of the step have their results above.
    errors: dict[str, str] = field(default_factory=dict)
    # Wall-clock seconds spent per kind of work this step ("classify" or "embed", "prefill",
    # "decode").
    step_seconds: dict[str, float] = field(default_factory=dict)

    def merge(self, other: RunnerOutput) -> None:
        """Take in the results of another run of part of the same step (EngineCore re-runs a
        failed batch one request at a time): every per-request field, the seconds added up."""
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if item.name == "step_seconds":
                for kind, seconds in theirs.items():
                    mine[kind] = mine.get(kind, 0.0) + seconds
            else:
                mine.update(theirs)
