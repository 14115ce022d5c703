"""Does a rewrite keep what its feedback is about? Word overlap, standard library only.

A rewrite *keeps the subject* when it reuses a content word of the feedback, and *keeps the problem*
when it reuses one beyond the subject (what is wrong, not only what it is about). Content words are
words of three letters or more, compared on their first five letters ("mistakes" and "mistake" match),
leaving out the words of `data/not_subject.txt` (function words, intensifiers, judgements, insults),
which a constructive rewrite should drop. `recipes.evaluate` reports both shares, and
`choose.choose_rewrite` prefers a candidate that keeps them.
"""
from __future__ import annotations

import re
from pathlib import Path

NOT_SUBJECT = frozenset(word for line in (Path(__file__).parent / "data" / "not_subject.txt").read_text().splitlines()
                        if not line.startswith("#") for word in line.split())
_DETERMINER = re.compile(r"\b(?:the|your|this|that|these|those|our|my)\s+", re.IGNORECASE)


def content_words(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in NOT_SUBJECT}


def keeps_subject(feedback: str, rewrite: str) -> bool:
    """Does `rewrite` reuse a content word of `feedback`? Feedback with none has nothing to keep."""
    words = content_words(feedback)
    return not words or bool(words & content_words(rewrite))


def guess_subject(feedback: str) -> str:
    """The thing criticised, for feedback that does not say it: the first words after a determiner up
    to a word that carries the criticism ("The quarterly report just doesn't..." -> "quarterly report").
    A guess that takes in a verb ("server went down") only makes `keeps_problem` stricter."""
    for match in _DETERMINER.finditer(feedback):
        words = []
        for word in re.findall(r"[A-Za-z'-]+|[^A-Za-z'\s-]", feedback[match.end():])[:4]:
            if not word[0].isalpha() or word.lower() in NOT_SUBJECT or "'" in word:
                break
            words.append(word)
        if words:
            return " ".join(words)
    return ""


def keeps_problem(feedback: str, rewrite: str, subject: str | None = None) -> bool:
    """Does `rewrite` reuse a content word of `feedback` beyond its subject? Feedback with no such
    word has nothing to keep. Without `subject`, it is guessed."""
    subject = guess_subject(feedback) if subject is None else subject
    words = content_words(feedback) - content_words(subject)
    return not words or bool(words & content_words(rewrite))
