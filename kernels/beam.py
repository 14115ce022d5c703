"""Beam search's share of the kernels: each step's candidates, and how the beams' rows follow.

A beam search of k beams holds k self-attention rows (one per beam, each with its SlotState) and
one cross-attention row (kernels/cross_attention.py). The scheduler's BeamSearch
(scheduler/beams.py) makes every choice; the runner computes and moves.

`beam_candidates`, as Hugging Face's beam search: the log-softmax of each beam's logits,
processed per beam in HF's order (kernels/sampling.process_logits: grammar mask, repetition
penalty, no-repeat n-grams, min_new_tokens), plus the beam's running score; then the 2k best
(beam, token) pairs over all k * vocab, by torch.topk as in `_get_top_k_continuations`.

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
    the indices of its beams in them, in beam order. Returns each one's 2k best candidates."""
    searches = sorted(searches, key=lambda item: len(item[1]))  # equal beam counts side by side
    index = [i for _, rows in searches for i in rows]
    log_probs = torch.log_softmax(logits[index], dim=-1)  # [num beams, vocab]
    process_logits(log_probs, [states[i] for i in index], eos_token_id)
    vocab = log_probs.shape[1]
    candidates, start = {}, 0
    for k, group in itertools.groupby(searches, key=lambda item: len(item[1])):
        group = list(group)
        scores = torch.stack([beam.scores for beam, _ in group])  # [m, k]
        total = log_probs[start:start + len(group) * k].view(len(group), k, vocab) + scores[:, :, None]
        best, where = torch.topk(total.view(len(group), k * vocab), 2 * k)  # each [m, 2k]
        rows = zip(group, best.tolist(), (where // vocab).tolist(), (where % vocab).tolist())
        for (beam, _), top_scores, parents, tokens in rows:
            candidates[beam.request_id] = BeamCandidates(parents, tokens, top_scores)
        start += len(group) * k
    return candidates
