"""Checks on one rewrite against its input, text only: does it keep the subject, keep the problem
(`takeoff.feedback.keeps`), break a word, stutter, read as garbled, invent a claim, echo its input.
`recipes.evaluate` reports them and the rewriter's checkpoint pick scores by them."""
from __future__ import annotations

import re

from recipes.datasets import normalise
from takeoff.feedback.claims import introduced_claims
from takeoff.feedback.fluency import is_garbled
from takeoff.feedback.keeps import keeps_problem, keeps_subject


def broken_words(negative: str, rewrite: str) -> list[str]:
    """Words of the rewrite that are neither in its input nor English (wordfreq knows of no use of
    them): what a copy that lost or doubled a piece of a word leaves ("the desssert menu")."""
    from wordfreq import zipf_frequency
    given = set(re.findall(r"[a-z']+", negative.lower()))
    return [w for w in re.findall(r"[a-z']+", rewrite.lower()) if w not in given and zipf_frequency(w, "en") == 0]


STUTTER = re.compile(r"\b((?:\w+ ){1,3}\w+) \1\b")


def stutters(rewrite: str) -> bool:
    """A phrase of two to four words said twice in a row ("by the end of the end of the week"):
    the no-repeat block of decoding only stops longer runs."""
    return bool(STUTTER.search(rewrite.lower()))


def invented_claims(row: dict, rewrite: str) -> list[str]:
    """What the rewrite claims that its input and context do not ("deadline", "by Friday")."""
    return [claim.text for claim in introduced_claims(rewrite, row["negative"], row["context"])]


def rewrite_checks(rows: list[dict], outputs: list[str]) -> dict[str, list[bool]]:
    """Per rewrite: does it keep the subject of its input, keep its problem (with the row's `subject`
    where the row has one), break a word, stutter, read as garbled (`takeoff.feedback.fluency`),
    invent a claim."""
    return dict(keep=[keeps_subject(r["negative"], o) for r, o in zip(rows, outputs)],
                problem=[keeps_problem(r["negative"], o, r.get("subject")) for r, o in zip(rows, outputs)],
                broken=[bool(broken_words(r["negative"], o)) for r, o in zip(rows, outputs)],
                stutter=[stutters(o) for o in outputs],
                garbled=[is_garbled(o, r["negative"], r["context"]) for r, o in zip(rows, outputs)],
                invented=[bool(invented_claims(r, o)) for r, o in zip(rows, outputs)])


def is_echo(negative: str, rewrite: str) -> bool:
    return normalise(negative) == normalise(rewrite) or normalise(rewrite) in normalise(negative)
