"""Is a rewrite garbled? The feedback coach's fluency check, beside the claim check (claims.py).

A sentence of a rewrite is garbled when it
- repeats a word trigram ("the mistakes in the mistakes in"), unless the trigram is one its source
  says (naming "the sprint demo" twice in one sentence is clumsy, not broken);
- uses one content word three times ("the issuee issuee issuee issue");
- leaks a word of the prompt template ("constructive", "context") that its source lacks: the model
  copied its instruction instead of the feedback;
- ends mid-phrase: on an article, a possessive or a conjunction ("... agree what to change with
  the."), or, for the rewrite's last sentence, with no closing punctuation at all (cut off).

`garbles(rewrite, *sources)` lists what is wrong, with the words that show it; `recipes.evaluate`
reports the share of garbled rewrites and the rewriter's checkpoint pick avoids them. Word lists,
not a grammar: it sees loops, leaks and cut-offs, not every ungrammatical sentence. Standard
library only.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from takeoff.feedback.sentences import split_sentences

KINDS = {"repeat": "a repeated phrase", "overuse": "a word said three times",
         "leak": "a word of the instruction", "unfinished": "an unfinished sentence"}
# Words of the prompt (`task.rewrite_prompt`) that a rewrite has no reason to say.
TEMPLATE_WORDS = ("constructive", "context")
# Words a finished English sentence does not end on.
OPEN_ENDINGS = frozenset("""a an the your my our their his her its and or but nor because although though
whereas if whether than of""".split())
# Words that do not count as content when one is said three times.
FUNCTION_WORDS = frozenset("""a an the and or but nor so yet if then than that this these those there here
of to in on at by for with from into onto over under about after before through between as up out off
i me my mine we us our you your yours he him his she her it its they them their what which who whom whose
when where why how all any some each every no not both either neither more most much many few one other
is are was were be been being am do does did done have has had can could will would shall should may might
must let just also too very really still only even again well""".split())
_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_FINAL = re.compile(r"[.!?…]['\"”’)\]]*$")


@dataclass(frozen=True)
class Garble:
    kind: str  # one of KINDS
    text: str  # the words that show it: "the mistakes in", "issuee", "constructive"


def _words(text: str) -> list[str]:
    return [re.sub(r"['’]s$", "", w) for w in _WORD.findall(text.lower())]


def _repeats(words: list[str], source_trigrams: set[tuple[str, ...]]) -> list[Garble]:
    trigrams = Counter(zip(words, words[1:], words[2:]))
    return [Garble("repeat", " ".join(t)) for t, n in trigrams.items() if n > 1 and t not in source_trigrams]


def _overused(words: list[str]) -> list[Garble]:
    counts = Counter(w for w in words if len(w) > 2 and w not in FUNCTION_WORDS)
    return [Garble("overuse", w) for w, n in counts.items() if n >= 3]


def _unfinished(sentence: str, is_last: bool) -> list[Garble]:
    words = _words(sentence)
    if words and words[-1] in OPEN_ENDINGS:
        return [Garble("unfinished", words[-1])]
    if is_last and not _FINAL.search(sentence.strip()):
        return [Garble("unfinished", " ".join(words[-3:]))]
    return []


def garbles(rewrite: str, *sources: str) -> list[Garble]:
    """What makes `rewrite` garbled, sentence by sentence; `sources` (the feedback, its context)
    are what it may repeat or name. Empty for a fluent rewrite."""
    source_words = _words(" ".join(sources))
    source_trigrams = {tuple(source_words[i:i + 3]) for i in range(len(source_words) - 2)}
    found = [Garble("leak", w) for w in TEMPLATE_WORDS if w in _words(rewrite) and w not in source_words]
    sentences = split_sentences(rewrite)
    if not sentences:
        return [*found, Garble("unfinished", "")]
    for index, sentence in enumerate(sentences):
        words = _words(sentence.text)
        found += _repeats(words, source_trigrams) + _overused(words)
        found += _unfinished(sentence.text, index == len(sentences) - 1)
    return found


def is_garbled(rewrite: str, *sources: str) -> bool:
    return bool(garbles(rewrite, *sources))
