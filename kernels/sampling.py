"""Choosing each sequence's next token from its logits.

The order is Hugging Face `generate`'s: repetition penalty, no-repeat n-gram, min_new_tokens, then
(when sampling) temperature, top-k, top-p. Each sequence draws from its own torch.Generator, so a
seeded request gets the same tokens alone or in any batch. A beam search's beams are processed
alike (`process_logits`, on log-probabilities as HF's beam search does); kernels/beam.py chooses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from kernels.constrained import Matcher, mask_logits, unban_grammar_tokens
from scheduler.sampling_params import SamplingParams


@dataclass
class SlotState:
    """What the runner keeps for the sequence in one KV slot."""
    request_id: str
    sampling: SamplingParams
    input_len: int  # encoder tokens, i.e. cross-attention keys in the cache
    token_ids: list[int]  # decoder input so far: the start token, then every generated token
    generator: torch.Generator | None = None  # only for sampled requests
    row: int = -1  # the KV-cache row holding this sequence (the runner keeps rows packed)
    cross_row: int = -1  # the cross-attention row of its request (a beam search's beams share one)
    # no-repeat n-gram index: the (n-1) tokens before each n-gram -> the tokens that followed them
    ngrams: dict[tuple[int, ...], set[int]] = field(default_factory=dict)
    matcher: Matcher | None = None  # only for requests with a regex or JSON schema

    def __post_init__(self) -> None:
        tokens, self.token_ids = self.token_ids, []
        for token_id in tokens:
            self.append(token_id)

    @property
    def num_generated(self) -> int:
        return len(self.token_ids) - 1

    @property
    def position(self) -> int:
        """Decoder position of the token this sequence feeds in next."""
        return len(self.token_ids) - 1

    def append(self, token_id: int) -> None:
        self.token_ids.append(token_id)
        n = self.sampling.no_repeat_ngram_size
        if n and len(self.token_ids) >= n:
            ngram = self.token_ids[-n:]
            self.ngrams.setdefault(tuple(ngram[:-1]), set()).add(ngram[-1])
        if self.matcher is not None and len(self.token_ids) > 1:  # the start token is no output
            self.matcher.advance(token_id)

    def fork(self, row: int) -> SlotState:
        """A copy of this sequence, to continue apart from it in KV row `row` (a beam's second
        child); the sampling generator is not copied (beams decode greedily)."""
        twin = SlotState(self.request_id, self.sampling, self.input_len, [], row=row,
                         cross_row=self.cross_row)
        twin.token_ids = list(self.token_ids)
        twin.ngrams = {prefix: set(followers) for prefix, followers in self.ngrams.items()}
        twin.matcher = None if self.matcher is None else self.matcher.fork()
        return twin

    def banned_tokens(self) -> set[int]:
        n = self.sampling.no_repeat_ngram_size
        if not n or len(self.token_ids) + 1 < n:
            return set()
        prefix = tuple(self.token_ids[len(self.token_ids) - n + 1:]) if n > 1 else ()
        return self.ngrams.get(prefix, set())


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()  # a fresh non-deterministic seed
    else:
        generator.manual_seed(seed)
    return generator


def choose_tokens(logits: torch.Tensor, states: list[SlotState], eos_token_id: int) -> list[int]:
    """logits: [n, vocab] fp32, one row per state (modified in place). Returns one token per row."""
    process_logits(logits, states, eos_token_id)
    tokens = logits.argmax(dim=-1).tolist()
    for i, state in enumerate(states):
        if not state.sampling.is_greedy:
            probs = warp(logits[i], state.sampling).softmax(dim=-1)
            tokens[i] = int(torch.multinomial(probs, 1, generator=state.generator).item())
    return tokens


def process_logits(scores: torch.Tensor, states: list[SlotState], eos_token_id: int,
                   rows: list[int] | None = None) -> None:
    """Grammar masks, penalties and min_new_tokens, in place on scores [n, vocab] (logits, or a
    beam search's log-probabilities): states[i]'s in row rows[i] (default: row i)."""
    rows = list(range(len(states))) if rows is None else rows
    constrained = [row for row, state in zip(rows, states) if state.matcher is not None]
    matchers = [state.matcher for state in states if state.matcher is not None]
    grammar_only = mask_logits(scores, constrained, matchers)
    apply_penalties(scores, states, eos_token_id, rows)
    unban_grammar_tokens(scores, constrained, grammar_only)


def apply_penalties(logits: torch.Tensor, states: list[SlotState], eos_token_id: int,
                    rows: list[int] | None = None) -> None:
    """Repetition penalty, no-repeat n-gram and min_new_tokens, in place on logits [n, vocab]:
    states[i]'s in row rows[i] (default: row i)."""
    rows = list(range(len(states))) if rows is None else rows
    for i, state in zip(rows, states):
        penalty = state.sampling.repetition_penalty
        if penalty != 1.0:
            seen = torch.tensor(state.token_ids, device=logits.device)
            scores = logits[i].gather(0, seen)
            scores = torch.where(scores < 0, scores * penalty, scores / penalty)
            logits[i].scatter_(0, seen, scores)
        banned = state.banned_tokens()
        if banned:
            logits[i, list(banned)] = float("-inf")
    suppress_eos = [i for i, s in zip(rows, states) if s.num_generated < s.sampling.min_new_tokens]
    if suppress_eos:
        logits[suppress_eos, eos_token_id] = float("-inf")


def warp(scores: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Temperature, then top-k, then top-p on one row of scores [vocab]; dropped tokens get -inf."""
    scores = scores / params.temperature
    if params.top_k > 0:
        k = min(params.top_k, scores.shape[-1])
        kth_best = torch.topk(scores, k).values[-1]
        scores = scores.masked_fill(scores < kth_best, float("-inf"))
    if params.top_p < 1.0:
        ascending, order = torch.sort(scores)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= 1 - params.top_p
        drop[-1] = False  # always keep the most likely token
        scores = scores.masked_fill(drop.scatter(0, order, drop), float("-inf"))
    return scores
