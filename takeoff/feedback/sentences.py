"""Split feedback into sentences, each with its character offsets into the original text.

Rules, in order: a blank line, a bullet or a new line after a finished sentence ends a sentence
(a line that goes on in lower case continues a hard-wrapped one); within a line, a run of `.`, `!`,
`?` or `…` (with any closing quotes or brackets after it) ends a sentence when whitespace follows
and the next word does not start in lower case, unless the period belongs to an abbreviation
("e.g.", "Dr.", "No. 5") or an initial ("J. Smith"). Periods inside a word ("3.5", "U.S.A",
"example.com") never end one; the CJK marks 。！？ always do. Spans never start or end with whitespace, and
`text[span.start:span.end] == span.text`.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Abbreviations after which a period never ends the sentence (compared lower-case, inner dots kept).
NEVER_FINAL = frozenset({
    "e.g", "i.e", "cf", "viz", "vs", "al", "approx", "incl", "esp", "resp", "ca",
    "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "jr", "st", "mt", "rev", "hon", "gen", "col",
    "capt", "lt", "sgt", "gov", "sen", "rep", "dept", "univ", "assn",
})
# Abbreviations that only stay inside the sentence when a number follows ("No. 5", "p. 12").
BEFORE_NUMBER = frozenset({"no", "nos", "vol", "p", "pp", "fig", "figs", "sec", "ch", "eq", "art"})

_TERMINAL = re.compile(r"(?:[.!?…]+|[。！？]+)[\"'”’»)\]}」』]*")
_FULL_WIDTH = "。！？"  # CJK marks end a sentence with no space after them
_LINE = re.compile(r"[^\r\n]+")
_BULLET = re.compile(r"[ \t]*(?:[-*•‣◦▪–+]|\d{1,3}[.)]|[a-z]\))[ \t]+")
_OPENERS = "\"'“‘«([{"
_CLOSERS = "\"'”’»)]}"
_NEXT_WORD = re.compile(r"\s*[" + re.escape(_OPENERS) + r"]*(\S*)")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int  # offset of the first character in the original text
    end: int  # offset one past the last character


def split_sentences(text: str) -> list[Sentence]:
    """The sentences of `text`, in order, with offsets into it."""
    sentences = []
    for block_start, block_end in _blocks(text):
        for start, end in _split_block(text, block_start, block_end):
            start, end = _strip(text, start, end)
            if _has_content(text[start:end]):
                sentences.append(Sentence(text[start:end], start, end))
    return sentences


def _blocks(text: str) -> list[tuple[int, int]]:
    """Spans that no sentence crosses: lines, bullets removed, hard-wrapped lines joined."""
    blocks: list[list[int]] = []
    previous_end = 0
    for line in _LINE.finditer(text):
        start, end = line.span()
        if not text[start:end].strip():
            continue
        bullet = _BULLET.match(text, start, end)
        content_start = bullet.end() if bullet else start
        gap = text[previous_end:start]
        continues = (blocks and not bullet and len(_LINE_BREAK.findall(gap)) == 1
                     and not _ends_sentence(text, blocks[-1][0], blocks[-1][1])
                     and _starts_lower(text, content_start, end))
        if continues:
            blocks[-1][1] = end
        else:
            blocks.append([content_start, end])
        previous_end = end
    return [(start, end) for start, end in blocks]


def _split_block(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    sentence_start = start
    for match in _TERMINAL.finditer(text, start, end):
        after = match.end()
        if match.group()[0] not in _FULL_WIDTH and after < end:
            if not text[after].isspace():
                continue  # "3.5", "e.g.", "U.S.A": punctuation inside a word
            if not _is_boundary(text, match, end):
                continue
        spans.append((sentence_start, after))
        sentence_start = after
    if sentence_start < end:
        spans.append((sentence_start, end))
    return spans


def _is_boundary(text: str, match: re.Match, end: int) -> bool:
    """Whether the terminal punctuation in `match`, followed by whitespace, ends a sentence."""
    next_word = _next_word(text, match.end(), end)
    if next_word[:1].islower():
        return False
    if match.group().rstrip(_CLOSERS) != ".":
        return True  # "!", "?", "?!", "...", "…"
    word = _word_before(text, match.start())
    key = word.lower()
    if key in NEVER_FINAL:
        return False
    if key in BEFORE_NUMBER and next_word[:1].isdigit():
        return False
    return not (len(word) == 1 and word.isupper())  # an initial: "J. Smith"


def _word_before(text: str, position: int) -> str:
    start = position
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:position].lstrip(_OPENERS)


def _next_word(text: str, position: int, end: int) -> str:
    match = _NEXT_WORD.match(text, position, end)
    return match.group(1) if match else ""


def _ends_sentence(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] ends with terminal punctuation (closing quotes allowed)."""
    stripped = text[start:end].rstrip().rstrip(_CLOSERS)
    return stripped.endswith((".", "!", "?", "…", ":", ";"))


def _starts_lower(text: str, start: int, end: int) -> bool:
    return _next_word(text, start, end)[:1].islower()


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _has_content(piece: str) -> bool:
    """Whether a span holds more than punctuation: a word, a number, an emoji."""
    return any(unicodedata.category(ch)[0] not in "PZC" for ch in piece)
