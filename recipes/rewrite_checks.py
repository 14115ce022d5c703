"""Checks on one rewrite against its input, text only: does it keep the subject, keep the problem,
break a word, stutter, read as garbled, invent a claim, echo its input. `recipes.evaluate` reports
them, the rewriter's checkpoint pick scores by them, and the offline generator uses `content_words`."""
from __future__ import annotations

import re

from recipes.datasets import normalise
from takeoff.feedback.claims import introduced_claims
from takeoff.feedback.fluency import is_garbled

# Words that carry the criticism rather than its subject; a rewrite should drop them.
NOT_SUBJECT = set("""the a an and or but if of to in on at for with from by about into over this that these those
it its is are was were be been being have has had do does did done not no never again just really very so too
you your yours you're i i'm me my we our us they them their he she his her who what which when why how all any
some more most much many one another again ever even only still yet also can could would should will shall may
might must get got make made let lets seriously honestly frankly absolutely completely totally entirely clearly
bad worst terrible awful useless lazy sloppy mess disaster disappointing unacceptable embarrassing amateurish
idiot stupid careless hopeless pathetic painful wrong fault blame because reason out fired replaced job warning
great wonderful amazing brilliant nice lovely sure wow oh well look think seem seems seemed guess feel feels
thing things whole kind sort bit lot always anyone anything everyone everything nobody nothing someone something
there here then than now time should mess messy garbage joke rubbish poor worse quite fine okay
better good doesn don didn isn wasn aren won can couldn put few past""".split())


def content_words(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in NOT_SUBJECT}


def keeps_subject(negative: str, rewrite: str) -> bool:
    words = content_words(negative)
    return not words or bool(words & content_words(rewrite))


_DETERMINER = re.compile(r"\b(?:the|your|this|that|these|those|our|my)\s+", re.IGNORECASE)


def guess_subject(negative: str) -> str:
    """The thing criticised, for inputs that do not say it: the first words after a determiner up to a
    word that carries the criticism ("The quarterly report just doesn't..." -> "quarterly report"). A
    guess that takes in a verb ("server went down") only makes `keeps_problem` stricter."""
    for match in _DETERMINER.finditer(negative):
        words = []
        for word in re.findall(r"[A-Za-z'-]+|[^A-Za-z'\s-]", negative[match.end():])[:4]:
            if not word[0].isalpha() or word.lower() in NOT_SUBJECT or "'" in word:
                break
            words.append(word)
        if words:
            return " ".join(words)
    return ""


def keeps_problem(negative: str, rewrite: str, subject: str | None = None) -> bool:
    """Does the rewrite reuse a content word of the input beyond its subject (what is wrong, not just
    what it is about)? An input with no such word has nothing to keep. Without `subject`, it is guessed."""
    subject = guess_subject(negative) if subject is None else subject
    words = content_words(negative) - content_words(subject)
    return not words or bool(words & content_words(rewrite))


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
