"""Beam search for one request, as Hugging Face generate(num_beams=k) runs it, in plain Python.

Each step the runner (kernels/beam.py) turns the beams' logits into candidates: the 2k best
(beam, token) continuations by cumulative log-probability, as transformers 5.24's
`_get_top_k_continuations` does. `BeamSearch.step` does the rest of that version's
`_beam_search` step:

- A candidate is done when its token is EOS or it holds max_new_tokens tokens; or, our
  addition (HF's beam search has no stop sequences), when its text contains a stop sequence:
  it then ends there as at EOS, and its text is cut before the stop sequence.
- The k best candidates that are not done go on (`_get_running_beams_for_next_iteration`).
- Done candidates among the first k enter the k finished hypotheses, scored sum(log p) /
  num_tokens ** length_penalty (num_tokens: generated tokens, EOS included), unless the
  search can no longer improve (`_update_finished_beams`).
- The search ends when no running beam can beat the worst finished hypothesis (HF's heuristic,
  which early_stopping False / "never" tunes), when early_stopping is True and k hypotheses
  have finished, or when every candidate is done (max_new_tokens).

Scores are float32 in HF. Every arithmetic step here is rounded to float32 as torch rounds it
(one float32 operation computed in double and rounded once is exact; torch rounds a Python
scalar operand to float32 first), so the same candidates give the same choices and scores.
Equal scores keep candidate order; only -1e9 placeholders ever tie.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Callable

from scheduler.detokenizer import IncrementalDetokenizer
from scheduler.output import BeamCandidates, BeamStep
from scheduler.sampling_params import SamplingParams
from scheduler.status import FINISH_REASONS, RequestStatus

NOT_A_SCORE = -1.0e9  # HF's mark of a beam or hypothesis that must not be chosen


def initial_scores(num_beams: int) -> list[float]:
    """Running scores before the first step: the beams are identical, so only beam 0's
    candidates may be taken (HF's initialisation)."""
    return [0.0] + [NOT_A_SCORE] * (num_beams - 1)


@dataclass(frozen=True)
class BeamSequence:
    """One returned hypothesis of a finished beam search."""
    token_ids: tuple[int, ...]  # generated ids, a final EOS included
    text: str  # decoded, cut before a stop sequence
    score: float  # HF's sequences_scores: sum of log-probs / len(token_ids) ** length_penalty
    status: RequestStatus  # FINISHED_EOS, FINISHED_STOP or FINISHED_LENGTH

    @property
    def finish_reason(self) -> str | None:
        return FINISH_REASONS.get(self.status)


@dataclass
class _Hypothesis:
    score: float
    token_ids: list[int]
    finished: bool  # False: a placeholder, or a candidate that was not done


class BeamSearch:
    def __init__(self, request_id: str, sampling: SamplingParams, eos_token_id: int | None,
                 decode: Callable[[list[int]], str]) -> None:
        self.request_id, self.sampling = request_id, sampling
        self.eos_token_id, self._decode = eos_token_id, decode
        k = sampling.num_beams
        self.num_generated = 0  # tokens each running beam holds
        self.running: list[list[int]] = [[] for _ in range(k)]
        self.running_scores = initial_scores(k)
        self.finished = [_Hypothesis(NOT_A_SCORE, [], False) for _ in range(k)]  # best first
        self.may_improve = True  # HF's is_early_stop_heuristic_unsatisfied
        self.is_done = False
        self.pending: BeamStep | None = None  # how the beams go on, for the next schedule

    @classmethod
    def of(cls, request, decode: Callable[[list[int]], str]) -> BeamSearch | None:
        """The beam search of a generation request (scheduler.request.Request); None when it
        decodes one sequence."""
        if not request.sampling.is_beam_search:
            return None
        return cls(request.request_id, request.sampling, request.eos_token_id, decode)

    def step(self, candidates: BeamCandidates) -> None:
        """Take one step's 2k candidates (best first); sets `pending`, or `is_done`."""
        k = self.sampling.num_beams
        sequences = [self.running[b] + [t] for b, t in zip(candidates.beams, candidates.token_ids)]
        done = [self._ends(sequence) for sequence in sequences]
        going_on = [_f32(s + NOT_A_SCORE) if d else s for s, d in zip(candidates.scores, done)]
        chosen = _best(going_on, k)
        self._keep_finished(candidates.scores, sequences, done)
        self.running = [sequences[i] for i in chosen]
        self.running_scores = [going_on[i] for i in chosen]
        self.num_generated += 1
        self.may_improve = self.may_improve and self._can_improve()
        all_finished = all(h.finished for h in self.finished)
        self.is_done = (not self.may_improve or all(done)
                        or (all_finished and self.sampling.early_stopping is True))
        self.pending = None if self.is_done else BeamStep(
            self.request_id, [candidates.beams[i] for i in chosen],
            [candidates.token_ids[i] for i in chosen], list(self.running_scores), self.num_generated)

    def _ends(self, token_ids: list[int]) -> bool:
        return (token_ids[-1] == self.eos_token_id or len(token_ids) >= self.sampling.max_new_tokens
                or (bool(self.sampling.stop) and self._text(token_ids)[1]))

    def _keep_finished(self, scores: list[float], sequences: list[list[int]], done: list[bool]) -> None:
        """HF's `_update_finished_beams`: the k best of the finished and the newly done."""
        params, k = self.sampling, self.sampling.num_beams
        divisor = _f32((self.num_generated + 1) ** params.length_penalty)
        full = params.early_stopping is True and all(h.finished for h in self.finished)
        new = []
        for i, (score, sequence, is_done) in enumerate(zip(scores, sequences, done)):
            value = _f32(score / divisor)
            just_finished = is_done and i < k  # the rest are spares, kept so that k can go on
            for penalised in (full, not self.may_improve, not just_finished):
                if penalised:
                    value = _f32(value + NOT_A_SCORE)
            new.append(_Hypothesis(value, sequence, just_finished))
        merged = self.finished + new
        self.finished = [merged[i] for i in _best([h.score for h in merged], k)]

    def _can_improve(self) -> bool:
        """HF's `_check_early_stop_heuristic`: could the best running beam still beat the worst
        finished hypothesis? Always, while fewer than k have finished."""
        params = self.sampling
        if params.early_stopping == "never" and params.length_penalty > 0.0:
            length = params.max_new_tokens  # the longest a running beam may grow
        else:
            length = self.num_generated
        best = _f32(self.running_scores[0] / _f32(length ** params.length_penalty))
        worst = min(h.score for h in self.finished)
        return any(best > (worst if h.finished else NOT_A_SCORE) for h in self.finished)

    def results(self) -> list[BeamSequence]:
        """The best num_return_sequences hypotheses, best first."""
        return [self._sequence(h) for h in self.finished[:self.sampling.num_return_sequences]]

    def _sequence(self, hypothesis: _Hypothesis) -> BeamSequence:
        token_ids = hypothesis.token_ids
        text, stopped = self._text(token_ids)
        if token_ids and token_ids[-1] == self.eos_token_id:
            status = RequestStatus.FINISHED_EOS
        else:
            status = RequestStatus.FINISHED_STOP if stopped else RequestStatus.FINISHED_LENGTH
        return BeamSequence(tuple(token_ids), text, hypothesis.score, status)

    def _text(self, token_ids: list[int]) -> tuple[str, bool]:
        """The text of these ids (a final EOS is no text), cut before a stop sequence, and
        whether one was found."""
        if token_ids and token_ids[-1] == self.eos_token_id:
            token_ids = token_ids[:-1]
        detokenizer = IncrementalDetokenizer(self._decode, self.sampling.stop)
        return detokenizer.step(token_ids, final=True), detokenizer.stopped


def _best(values: list[float], k: int) -> list[int]:
    """Indices of the k largest values, largest first; equal values keep their order."""
    return sorted(range(len(values)), key=lambda i: -values[i])[:k]


def _f32(x: float) -> float:
    """x rounded to the nearest float32, as torch stores it."""
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:  # rounds to infinity, which struct refuses to write
        return math.copysign(math.inf, x)
