"""Pick the rewrite to show from the rewriter's n best, as the feedback coach does. Standard library only.

The rewriter returns several sequences, best first (beam search's n best). The coach shows the first
that passes both checks, the claim check (`claims.introduced_claims`: no time, deadline, number, name
or event the feedback and its context lack) and the fluency check (`fluency.garbles`), preferring among
those the first that also keeps the feedback's subject and problem (`keeps`). When none passes both
checks it shows the best sequence with a warning that says what is wrong with it. A candidate that is
empty or only repeats the feedback is never picked while another is left.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from takeoff.feedback.claims import introduced_claims, rewrite_warning
from takeoff.feedback.fluency import KINDS, garbles
from takeoff.feedback.keeps import keeps_problem, keeps_subject

# How many sequences the coach asks the rewriter for (beam search's n best; at least this many beams).
NUM_CANDIDATES = 4


@dataclass(frozen=True)
class Candidate:
    text: str
    rank: int           # its place in the rewriter's order, 0 = best
    warning: str | None  # why it should not be shown as it is; None when it passes both checks
    keeps: bool         # it keeps the feedback's subject and problem


def _same_words(a: str, b: str) -> bool:
    return re.findall(r"\w+", a.lower()) == re.findall(r"\w+", b.lower())


def fluency_warning(rewrite: str, *sources: str) -> str | None:
    """One sentence for a person about to use a garbled rewrite, or None when it reads as fluent."""
    found = garbles(rewrite, *sources)
    if not found:
        return None
    kinds = sorted({KINDS[g.kind] for g in found}, key=list(KINDS.values()).index)
    return f"This rewrite may not read well ({', '.join(kinds)}). Check it before you use it."


def judge(text: str, rank: int, sentence: str, context: str, subject: str | None = None) -> Candidate:
    claim_warning = rewrite_warning(introduced_claims(text, sentence, context))
    warning = claim_warning or fluency_warning(text, sentence, context)
    keeps = keeps_subject(sentence, text) and keeps_problem(sentence, text, subject)
    return Candidate(text, rank, warning, keeps)


def pick(candidates: Sequence[str], sentence: str, context: str, subject: str | None = None) -> Candidate:
    """The candidate `choose_rewrite` shows, with its rank and checks."""
    texts = [(rank, text.strip()) for rank, text in enumerate(candidates)]
    usable = [(rank, text) for rank, text in texts if text and not _same_words(text, sentence)]
    judged = [judge(text, rank, sentence, context, subject) for rank, text in usable or texts]
    if not judged:
        return Candidate("", 0, None, False)
    clean = [c for c in judged if c.warning is None]
    return next((c for c in clean if c.keeps), clean[0] if clean else judged[0])


def choose_rewrite(candidates: Sequence[str], sentence: str, context: str,
                   subject: str | None = None) -> tuple[str, str | None]:
    """(rewrite, warning) from `candidates`, the rewriter's sequences for `sentence` best first:
    the first that passes the claim and fluency checks and keeps the subject and problem; failing
    that, the first that passes both checks; failing that, the best, with its warning. `subject`
    is what the feedback is about when the caller knows it (otherwise it is guessed)."""
    chosen = pick(candidates, sentence, context, subject)
    return chosen.text, chosen.warning
