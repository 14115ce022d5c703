"""The fluency check: what makes a rewrite garbled, on hand-made garbled and clean rewrites."""
from __future__ import annotations

import pytest

from takeoff.feedback.fluency import garbles, is_garbled

FEEDBACK = "You never listen to anyone."


@pytest.mark.parametrize("rewrite, source, found", [
    # loops the small rewriter wrote
    ("Could we go through the mistakes in the mistakes in the mistakes estate together?", FEEDBACK,
     [("repeat", "the mistakes in"), ("repeat", "mistakes in the"), ("repeat", "in the mistakes"),
      ("overuse", "mistakes")]),
    ("I can see the effort you've put into the issuee issuee issuee issue Age tracker.", "The age tracker is bad.",
     [("overuse", "issuee")]),
    # the instruction copied into the answer
    ("Is there anything I can do to help with your constructive going?", FEEDBACK, [("leak", "constructive")]),
    ("Thanks for the context. Could we talk it through?", FEEDBACK, [("leak", "context")]),
    # cut off: on an article or conjunction, or with no closing punctuation at the end
    ("Thanks for the report. Could we go through the.", "The report is a mess.", [("unfinished", "the")]),
    ("Thanks for the report, and. Could we go through it?", "The report is a mess.", [("unfinished", "and")]),
    ("Thanks for the report. Could we go through it together and agree", "The report is a mess.",
     [("unfinished", "together and agree")]),
    ("", FEEDBACK, [("unfinished", "")]),
])
def test_garbled_rewrites_say_why(rewrite, source, found):
    assert [(g.kind, g.text) for g in garbles(rewrite, source)] == found


@pytest.mark.parametrize("rewrite, source", [
    ("I'd like to understand what's going on. What would help?", FEEDBACK),
    ("Thanks for your work on the sprint demo, but it ran late. Could we agree a realistic timeline?",
     "The sprint demo was late again."),
    # the subject named twice in one sentence repeats the source's own words
    ("Thanks for the sprint demo; however, it ran late, so could we look at the sprint demo together?",
     "The sprint demo was late again."),
    # a word of the template the feedback itself uses may be said back
    ("Thanks for the constructive tone; the report still needs its summary.", "Be constructive: the report has no summary."),
    # a question may end on a preposition; a long sentence may say a word twice
    ("Is there anything I can help with?", FEEDBACK),
    ("The charts are clear, and the charts' labels need work.", "The charts are useless."),
    ("Could you check the totals again? I noticed the totals don't add up!", "The totals never add up."),
])
def test_clean_rewrites_are_not_garbled(rewrite, source):
    assert not is_garbled(rewrite, source), garbles(rewrite, source)


def test_a_loop_across_sentences_is_judged_per_sentence():
    # The same closing ask in two sentences is dull, not broken; three times in one sentence is broken.
    assert not is_garbled("Could we go through it together? Yes, could we go through it together?", FEEDBACK)
    assert is_garbled("Could we go through it together, go through it together, go through it?", FEEDBACK)
