"""The faithfulness check: what a rewrite claims that its feedback and context do not."""
from __future__ import annotations

import pytest

from takeoff.feedback.claims import introduced_claims, rewrite_warning
from takeoff.feedback.task import LABELS, verdict


@pytest.mark.parametrize("rewrite, feedback, claims", [
    # the examples: a missed deadline put into someone's mouth
    ("I can see the work you put into your cooking, but the deadline was missed. Could you flag any delays?",
     "Your cooking is terrible.", [("delay", "deadline"), ("delay", "missed"), ("delay", "delays")]),
    ("I did notice the timing slipped this week. Could you ask Sam to review it by Friday?",
     "Your performance has been disappointing.",
     [("delay", "timing"), ("delay", "slipped"), ("time", "this week"), ("name", "Sam"), ("time", "by Friday")]),
    ("Could we go through it together at the next meeting?", "The report is rubbish.",
     [("event", "the next meeting")]),
    ("There were 4 errors in twenty rows.", "There were errors.", [("number", "4"), ("number", "twenty")]),
    # what the feedback says may be restated
    ("I know the report came in late; could you flag it early next time?", "The report was late again.", []),
    ("I know the launch on Monday was hard, Priya.", "Priya, the launch on Monday was a disaster.", []),
    ("There were three errors in the 2 tables.", "There were 3 errors in the two tables.", []),
    # asking what would help, or offering a meeting, claims nothing
    ("Thanks for your work on the deck. Could we set up a meeting to go through it?", "The deck is rubbish.", []),
    ("I'd like to understand what's going on. What would help?", "You never listen to anyone.", []),
])
def test_claims_a_rewrite_adds(rewrite, feedback, claims):
    assert [(c.kind, c.text) for c in introduced_claims(rewrite, feedback)] == claims


def test_the_context_counts_as_said():
    rewrite = "Could we look at the handover before Friday's review?"
    assert introduced_claims(rewrite, "The handover is a mess.")
    assert not introduced_claims(rewrite, "The handover is a mess.", "A ward sister before Friday's review")


def test_the_warning_names_the_kinds_and_quotes_the_words():
    claims = introduced_claims("The deadline was missed on Friday. Ask Sam.", "This is bad.")
    warning = rewrite_warning(claims)
    assert warning.startswith("This rewrite mentions a time, a deadline or delay and a name that your feedback")
    assert "“deadline”" in warning and "“missed”" in warning and "“on Friday”" in warning
    assert rewrite_warning([]) is None


def probabilities(**shares: float) -> list[float]:
    return [shares.get(label.replace(" ", "_"), 0.0) for label in LABELS]


def test_the_kind_is_the_one_with_more_probability_not_the_top_label():
    reading = verdict(probabilities(Balanced_Criticism=0.3, Harsh_Criticism=0.26, Vague_Criticism=0.24,
                                    Threat=0.2), LABELS)
    assert (reading.kind, reading.label, reading.score, reading.unsure) == ("critical", "Harsh Criticism", 0.26, True)
    sure = verdict(probabilities(Positive_Comment=0.5, Helpful_Suggestion=0.4, Threat=0.1), LABELS)
    assert (sure.kind, sure.label, sure.unsure) == ("constructive", "Positive Comment", False)
