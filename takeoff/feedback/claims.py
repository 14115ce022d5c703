"""Claims a rewrite makes that its source does not: the feedback coach's faithfulness check.

A constructive rewrite may restate what the feedback says. It must not add a time or date, a
deadline or delay, a number, a name, or an event that the feedback and its context never mention:
"I did notice the deadline was missed" turns "Your cooking is terrible" into a false accusation.
`introduced_claims(rewrite, feedback, context)` lists what a rewrite adds; the server warns about
such a rewrite (`rewrite_warning`) and `recipes.evaluate` counts them. Standard library only.

Word lists, not understanding: it finds the words that make a claim of each kind and looks for the
same words (for deadlines and delays: any word about time running over) in the source. It does not
see an invented cause ("because the team was left out").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = {"time": "a time", "delay": "a deadline or delay", "number": "a number", "name": "a name",
         "event": "an event"}

_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekend"
# "may" and "march" are left out: as verbs they are far more common than as months.
_MONTHS = "january|february|april|june|july|august|september|october|november|december"
_UNITS = "minute|hour|day|night|morning|afternoon|evening|week|fortnight|month|quarter|year|term|semester|sprint"
# group "key" is what must recur in the source; the words around it only make the quote readable.
_TIME = re.compile(rf"""(?:\b(?:on|by|before|until|till|since|from|at|in|within|over|for)\s+)?(?:the\s+)?\b(?P<key>
      (?:this|last|next|past|coming|every|each|previous)\s+(?:few\s+|couple\s+of\s+)?(?:{_UNITS})s?
    | (?:{_DAYS})s? | (?:{_MONTHS})
    | today|tonight|tomorrow|yesterday|lately|recently|overnight
    | daily|weekly|monthly|yearly|annually|fortnightly
    | end\s+of\s+(?:the\s+)?(?:{_UNITS})
    | \d{{1,2}}(?::\d{{2}})?\s*(?:am|pm) | \d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?
    | (?:a|an|\d+|two|three|four|five|six|few)\s+(?:{_UNITS})s?\s+(?:ago|from\s+now|early|late)
    | (?:in|within|after)\s+(?:a|an|\d+|two|three|four|five|six|a\s+few|a\s+couple\s+of)\s+(?:{_UNITS})s?
    )\b""", re.IGNORECASE | re.VERBOSE)
_DELAY = re.compile(r"\b(?P<key>deadlines?|late|lateness|later\s+than|delay(?:s|ed)?|overdue|behind\s+schedule"
                    r"|slipp(?:ed|ing)|slips?|missed|on\s+time|timelines?|timing|due(?!\s+to\b)|ran\s+over"
                    r"|running\s+behind|took\s+too\s+long)\b", re.IGNORECASE)
# In the source, any word about time running over licenses a rewrite's deadline or delay.
_DELAY_SOURCE = re.compile(_DELAY.pattern + r"|\b(?:slow(?:ly|er)?|wait(?:s|ed|ing)?|forever|ages|punctual(?:ity)?"
                           r"|schedul(?:e|ed|ing)|chas(?:e|ed|ing)|when\s+will|where\s+is|late[rs]?t?)\b",
                           re.IGNORECASE)
_NUMBER_WORDS = {"two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
                 "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "fifteen": "15", "twenty": "20",
                 "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000",
                 "million": "1000000", "twice": "2", "half": "0.5", "dozen": "12"}
_NUMBER = re.compile(r"\b(?P<key>\d+(?:[.,]\d+)*%?|" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)
_EVENT_NOUNS = ("meeting|launch|call|review|stand-?up|appraisal|one-to-one|interview|incident|outage|complaint"
                "|escalation|audit|inspection|conference|retro(?:spective)?|offsite|hearing|tribunal")
# An event the rewrite treats as real or scheduled ("the next meeting", "the client call"); an offer
# of one ("could we set up a meeting?") claims nothing.
_EVENT = re.compile(r"\b(?:the|our|your|their|his|her|next|last|this|that|upcoming|recent|several|some|many"
                    r"|today's|tomorrow's|yesterday's)\s+(?:[a-z-]+\s+)?(?P<key>" + _EVENT_NOUNS + r")s?\b",
                    re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;…\"“(\n])\s*$")
_PRONOUN_I = {"I", "I'm", "I'd", "I'll", "I've", "I’m", "I’d", "I’ll", "I’ve"}


@dataclass(frozen=True)
class Claim:
    kind: str  # one of KINDS
    text: str  # the words of the rewrite that make it: "by Friday", "deadline", "Sam"


def _words(text: str) -> str:
    """Lower case, words only, no "the": the form times are compared in."""
    return " " + " ".join(w for w in re.findall(r"[a-z0-9:/]+", text.lower()) if w != "the") + " "


def _number_key(word: str) -> str:
    return _NUMBER_WORDS.get(word.lower(), word.rstrip("%"))


def _names(rewrite: str, source_words: set[str]):
    """Capitalised words inside a sentence (not its first word, not an acronym, not "I") that the
    source never uses, in any case: "ask Sam to review it"."""
    for match in _WORD.finditer(rewrite):
        word = match.group()
        if (word[0].isupper() and not word.isupper() and word not in _PRONOUN_I
                and not _SENTENCE_START.search(rewrite[:match.start()])
                and word.lower() not in source_words and re.sub(r"['’]s$", "", word.lower()) not in source_words):
            yield match


def introduced_claims(rewrite: str, *sources: str) -> list[Claim]:
    """The claims `rewrite` makes that none of `sources` (the feedback, its context) supports, in
    the order they occur. A span already counted as a time is not counted again as a number."""
    source = " ".join(sources)
    source_text, source_words = _words(source), set(re.findall(r"[a-z0-9']+", source.lower()))
    source_numbers = {_number_key(m.group("key")) for m in _NUMBER.finditer(source)}
    found: list[tuple[int, Claim]] = []
    taken: list[range] = []

    def add(match: re.Match, kind: str) -> None:
        if not any(match.start() in span or match.end() - 1 in span for span in taken):
            taken.append(range(match.start(), match.end()))
            found.append((match.start(), Claim(kind, match.group().strip())))

    for match in _TIME.finditer(rewrite):
        if _words(match.group("key")) not in source_text:
            add(match, "time")
    if not _DELAY_SOURCE.search(source):
        for match in _DELAY.finditer(rewrite):
            add(match, "delay")
    for match in _NUMBER.finditer(rewrite):
        if _number_key(match.group("key")) not in source_numbers:
            add(match, "number")
    for match in _EVENT.finditer(rewrite):
        if not any(w.startswith(match.group("key").lower()[:6]) for w in source_words):
            add(match, "event")
    for match in _names(rewrite, source_words):
        add(match, "name")
    return [claim for _, claim in sorted(found, key=lambda pair: pair[0])]


def rewrite_warning(claims: list[Claim]) -> str | None:
    """One sentence for a person about to use the rewrite, or None when it adds nothing."""
    if not claims:
        return None
    quoted = ", ".join(f"“{claim.text}”" for claim in claims[:3])
    kinds = [KINDS[kind] for kind in KINDS if any(claim.kind == kind for claim in claims)]
    listed = " and ".join([", ".join(kinds[:-1]), kinds[-1]] if len(kinds) > 1 else kinds)
    return (f"This rewrite mentions {listed} that your feedback does not ({quoted}). "
            "Check it is true before you use it.")
