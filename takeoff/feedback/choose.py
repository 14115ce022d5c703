"""Pick the rewrite to show from the rewriter's n best, as the feedback coach does. Standard library only.

The rewriter returns several sequences, best first (beam search's n best). A candidate *passes* when
it claims nothing the feedback and its context lack (`claims.introduced_claims`), reads as fluent
(`fluency.garbles`), keeps the feedback's subject (`keeps.keeps_subject`: a rewrite about something
else, "the main point gets lost" for "You never listen to anyone", misleads) and, once the coach has
classified it, does not itself read as critical. The coach shows the first that passes and also keeps
the feedback's problem (`keeps.keeps_problem`), failing that the first that passes; when none passes it shows no rewrite at all and says why, so the
feedback is never made worse by a bad rewrite. A candidate that is empty or only repeats the
feedback is never picked.
"""
from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from takeoff.feedback.claims import introduced_claims
from takeoff.feedback.fluency import garbles
from takeoff.feedback.keeps import keeps_problem, keeps_subject

# How many sequences the coach asks the rewriter for (beam search's n best, with as many beams).
NUM_CANDIDATES = 4
# What each failed check is called in the warning, in the order they are listed.
PROBLEMS = {"echo": "repeats your sentence", "claims": "adds details your feedback does not give",
            "garbled": "does not read well", "subject": "leaves out what your sentence is about",
            "critical": "still reads as critical"}


@dataclass(frozen=True)
class Candidate:
    text: str
    rank: int                 # its place in the rewriter's order, 0 = best
    problems: tuple[str, ...]  # PROBLEMS keys of the checks it fails; empty when it passes
    keeps: bool               # it keeps the feedback's problem (a content word beyond the subject)

    @property
    def passes(self) -> bool:
        return not self.problems


def _same_words(a: str, b: str) -> bool:
    return re.findall(r"\w+", a.lower()) == re.findall(r"\w+", b.lower())


def judge(texts: Sequence[str], sentence: str, context: str, subject: str | None = None) -> list[Candidate]:
    """Every non-empty candidate with the text checks' verdicts, in the rewriter's order. `subject`
    is what the feedback is about when the caller knows it (otherwise `keeps` guesses it)."""
    judged = []
    for rank, text in enumerate(t.strip() for t in texts):
        if not text:
            continue
        problems = [name for name, failed in (
            ("echo", _same_words(text, sentence)),
            ("claims", bool(introduced_claims(text, sentence, context))),
            ("garbled", bool(garbles(text, sentence, context))),
            ("subject", not keeps_subject(sentence, text))) if failed]
        judged.append(Candidate(text, rank, tuple(problems), keeps_problem(sentence, text, subject)))
    return judged


def mark_critical(candidates: list[Candidate], critical: Collection[str]) -> list[Candidate]:
    """The candidates with those whose text the classifier read as critical failing that check."""
    return [replace(c, problems=(*c.problems, "critical")) if c.text in critical else c for c in candidates]


def pick(candidates: list[Candidate]) -> Candidate | None:
    """The first that passes and keeps the problem, else the first that passes, else None."""
    passing = [c for c in candidates if c.passes]
    return next((c for c in passing if c.keeps), passing[0] if passing else None)


def no_rewrite_warning(candidates: list[Candidate]) -> str:
    """What the coach says when no candidate passes: why, and that the sentence is kept."""
    found = {p for c in candidates for p in c.problems}
    why = [text for name, text in PROBLEMS.items() if name in found]
    reason = f"each one {' or '.join(why)}" if why else "the rewriter returned nothing"
    return (f"No rewrite of this sentence passed the checks ({reason}), so it is kept as you wrote it. "
            "Try saying what the problem is and what would help.")


def choose_rewrite(texts: Sequence[str], sentence: str, context: str, subject: str | None = None,
                   critical: Collection[str] = ()) -> tuple[str | None, str | None]:
    """(rewrite, None) for the candidate `pick` shows, or (None, warning) when none passes. `critical`
    holds the candidates' texts that the classifier read as critical."""
    candidates = mark_critical(judge(texts, sentence, context, subject), critical)
    chosen = pick(candidates)
    return (chosen.text, None) if chosen else (None, no_rewrite_warning(candidates))
