"""Beam search's share of the kernels: each step's candidates, and how the beams' rows follow.

A beam search of k beams holds k self-attention rows (one per beam, each with its SlotState) and
one cross-attention row (kernels/cross_attention.py). The scheduler's BeamSearch
(scheduler/beams.py) makes every choice; the runner computes and moves.

`beam_candidates`, as Hugging Face's beam search: the log-softmax of each beam's logits,
processed per beam in HF's order (kernels/sampling.process_logits: grammar mask, repetition
penalty, no-repeat n-grams, min_new_tokens), plus the beam's running score; then the 2k best
(beam, token) pairs over all k * vocab, as `_get_top_k_continuations` (equal scores may come in
another order than HF's single top-k gives them; only -inf ones tie in practice).

`follow`: beam j continues beam parents[j]. HF reorders its cache with an index_select of every
row; here a parent's first child takes over the parent's row and state as they are, and only
each further child of the same parent is copied, into the row of a beam that has no child: k
minus (distinct parents) row copies a step instead of k. benchmarks/offline_beam.py times both.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from kernels.sampling import SlotState, process_logits
from scheduler.output import BeamCandidates


@dataclass
class BeamRows:
    """What the runner keeps for one beam search besides its beams' SlotStates."""
    request_id: str
    slots: list[int]  # beam b's sequence is the one in slot slots[b]
    scores: torch.Tensor  # [num_beams] float32: each beam's cumulative log-probability
    num_generated: int = 0  # tokens each beam holds


def follow(beams: list[SlotState], parents: list[int]) -> tuple[list[SlotState], list[tuple[int, int]]]:
    """The beams' states once beam j continues beam parents[j] (tokens not yet appended), and
    the KV rows to copy, (source, target): one per child after a parent's first."""
    has_child = set(parents)
    spare_rows = [state.row for b, state in enumerate(beams) if b not in has_child]
    taken: set[int] = set()
    children, copies = [], []
    for parent in parents:
        state = beams[parent]
        if parent in taken:
            row = spare_rows.pop()
            children.append(state.fork(row))
            copies.append((state.row, row))
        else:
            taken.add(parent)
            children.append(state)
    return children, copies


def beam_candidates(logits: torch.Tensor, searches: list[tuple[BeamRows, list[int]]],
                    states: list[SlotState], eos_token_id: int) -> dict[str, BeamCandidates]:
    """logits [n, vocab] fp32 and states: the step's sequences; searches: each beam search with
    the indices of its beams among them, in beam order. Returns each one's 2k best candidates.

    Overwrites `logits` (every row) with scores: three passes over it and no copy, where a
    gather, a log-softmax and an add would each write a new [n, vocab] tensor (33 MB at 256 rows
    of a 32k vocabulary, freshly paged in every step). The best 2k of a request's k * vocab
    scores are among its beams' own best 2k each, so a top-k per row, then one over those 2k * k,
    gives what HF's one top-k over k * vocab gives (the same values, in order)."""
    beam_rows = [i for _, beams in searches for i in beams]
    torch.log_softmax(logits, dim=-1, out=logits)  # in place: bit for bit the same values
    process_logits(logits, [states[i] for i in beam_rows], eos_token_id, beam_rows)
    running = torch.zeros(logits.shape[0], dtype=logits.dtype, device=logits.device)
    running[beam_rows] = torch.cat([beam.scores for beam, _ in searches])
    logits.add_(running[:, None])  # each beam's log-probabilities + its running score
    width = 2 * max(len(beams) for _, beams in searches)
    row_best, row_tokens = torch.topk(logits, width, dim=-1)  # each [n, width]
    candidates = {}
    by_size = sorted(searches, key=lambda item: len(item[1]))
    for k, group in itertools.groupby(by_size, key=lambda item: len(item[1])):
        group = list(group)
        index = torch.tensor([i for _, beams in group for i in beams], device=logits.device)
        values = row_best[index, :2 * k].view(len(group), 2 * k * k)  # beam-major: beam b at [2kb, 2k(b+1))
        best, where = torch.topk(values, 2 * k)  # each [m, 2k]
        tokens = row_tokens[index, :2 * k].view(len(group), 2 * k * k).gather(1, where)
        rows = zip(group, best.tolist(), (where // (2 * k)).tolist(), tokens.tolist())
        for (beam, _), top_scores, parents, token_ids in rows:
            candidates[beam.request_id] = BeamCandidates(parents, token_ids, top_scores)
    return candidates
