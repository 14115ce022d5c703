"""An uncased rewriter's output written as English again."""
from __future__ import annotations

import pytest

from takeoff.feedback.claims import introduced_claims
from takeoff.feedback.truecase import restore_case


@pytest.mark.parametrize("decoded, sources, expected", [
    ("i can see the effort you ' ve put into the api design ; however, it isn ' t clear. could we talk it through?",
     ("The API design is a joke.",),
     "I can see the effort you've put into the API design; however, it isn't clear. Could we talk it through?"),
    # a name from the context, a hyphenated word, brackets and a percentage
    ("thanks, sam. i'd like to agree a follow - up on the rota ( v2 ) - it is 50 % done.",
     ("Your rota is useless.", "Ask Sam, who runs the rota"),
     "Thanks, Sam. I'd like to agree a follow-up on the rota (v2) - it is 50% done."),
    # a word capitalised only where a sentence starts is not a name
    ("could you check your notes again? your notes have errors.", ("Your notes are a mess. Your spelling too.",),
     "Could you check your notes again? Your notes have errors."),
])
def test_restore_case(decoded, sources, expected):
    assert restore_case(decoded, *sources) == expected


def test_it_adds_no_name_the_claim_check_would_flag():
    source = "Priya, the handover was a mess."
    rewrite = restore_case("thanks for the handover, priya. could we go through it with the team?", source)
    assert rewrite == "Thanks for the handover, Priya. Could we go through it with the team?"
    assert not introduced_claims(rewrite, source)
    # a lower-case word the source never capitalises stays as it is: no invented "Sam"
    assert restore_case("could sam help?", "The notes are bad.") == "Could sam help?"
