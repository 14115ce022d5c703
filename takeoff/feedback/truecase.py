"""Write an uncased model's output as English again.

A rewriter with an uncased WordPiece vocabulary (BERT2BERT from MiniLM) writes "i can see the
effort you ' ve put into the api design ; could sam help ?". `restore_case(text, *sources)`:
1. joins what WordPiece split apart: "you ' ve" -> "you've", "follow - up" -> "follow-up",
   " ;" -> ";", "( v2 )" -> "(v2)", "50 %" -> "50%";
2. writes each word the sources (the feedback and its context) spell with capitals inside a
   sentence as they spell it: "api" -> "API", "sam" -> "Sam" (a word capitalised only where it
   starts a sentence is not taken for a name, unless a comma follows it, as in "Priya, the ...");
3. writes "I" (and "I'm", "I'd", "I've", "I'll") and starts each sentence with a capital.
It never capitalises a word the sources lack, so it adds no name the claim check would flag.
Standard library only.
"""
from __future__ import annotations

import re

_SPLIT_APOSTROPHE = re.compile(r"(\w) ?['’] ?(s|t|ve|re|ll|d|m)\b")
_SPLIT_HYPHEN = re.compile(r"(\w) - (?=\w)")
_SPACE_BEFORE = re.compile(r" ([;:,.!?%)\]])")
_SPACE_AFTER = re.compile(r"([(\[]) ")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")
_PRONOUN_I = re.compile(r"\bi(?=\b|['’](?:m|d|ve|ll)\b)")


def join_pieces(text: str) -> str:
    """Undo the spaces a WordPiece decode puts around apostrophes, hyphens and punctuation."""
    text = _SPLIT_APOSTROPHE.sub(r"\1'\2", text)
    text = _SPLIT_HYPHEN.sub(r"\1-", text)
    text = _SPACE_BEFORE.sub(r"\1", text)
    return _SPACE_AFTER.sub(r"\1", text).strip()


def cased_words(*sources: str) -> dict[str, str]:
    """lower case -> the spelling the sources use inside a sentence, for words with a capital."""
    spelling: dict[str, str] = {}
    for source in sources:
        for match in _WORD.finditer(source):
            word = match.group()
            before = source[:match.start()].rstrip()
            starts_sentence = not before or before[-1] in ".!?:\"“"
            # "Priya, the handover..." names Priya; "API" is spelt so anywhere.
            named = not starts_sentence or source[match.end():].startswith(",") or word[1:] != word[1:].lower()
            if word != word.lower() and named:
                spelling.setdefault(word.lower(), word)
    return spelling


def restore_case(text: str, *sources: str) -> str:
    """`text`, written in lower case by an uncased model, as English: see the module docstring."""
    text = join_pieces(text)
    spelling = cased_words(*sources)
    text = _WORD.sub(lambda m: spelling.get(m.group().lower(), m.group()), text)
    text = _PRONOUN_I.sub("I", text)
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)
