"""The coach's pick from the rewriter's n best, and the word-overlap checks it leans on."""
from __future__ import annotations

from takeoff.feedback.choose import choose_rewrite, judge, pick
from takeoff.feedback.keeps import guess_subject, keeps_problem, keeps_subject

SENTENCE = "The quarterly report is rubbish and the totals don't add up."
CONTEXT = "A finance manager to an analyst"
GARBLED = "Thanks for the report. Could we go through the mistakes in the mistakes in the report?"
CLAIMS = "Thanks for the quarterly report, but the totals don't add up and it was late on Friday. Could we fix it?"
DROPS_PROBLEM = "Thanks for your work on the quarterly report. Could we go through it together?"
KEEPS_PROBLEM = "Thanks for the quarterly report. I noticed the totals don't add up. Could you check them again?"


def test_the_first_candidate_that_passes_both_checks_and_keeps_the_problem_is_shown():
    assert choose_rewrite([GARBLED, CLAIMS, DROPS_PROBLEM, KEEPS_PROBLEM], SENTENCE, CONTEXT) == (KEEPS_PROBLEM, None)
    assert pick(judge([GARBLED, CLAIMS, DROPS_PROBLEM, KEEPS_PROBLEM], SENTENCE, CONTEXT)).rank == 3


def test_a_clean_candidate_that_drops_the_problem_beats_a_flawed_one_that_keeps_it():
    assert choose_rewrite([CLAIMS, DROPS_PROBLEM], SENTENCE, CONTEXT) == (DROPS_PROBLEM, None)


def test_the_order_decides_between_candidates_that_pass_everything():
    other = "I can see the work in the quarterly report, although the totals don't add up. Shall we check them?"
    assert choose_rewrite([other, KEEPS_PROBLEM], SENTENCE, CONTEXT) == (other, None)


def test_with_no_candidate_that_passes_none_is_shown_and_the_warning_says_why():
    text, warning = choose_rewrite([CLAIMS, GARBLED], SENTENCE, CONTEXT)
    assert text is None
    assert "adds details your feedback does not give or does not read well" in warning
    assert "kept as you wrote it" in warning
    text, warning = choose_rewrite([GARBLED], SENTENCE, CONTEXT)
    assert text is None and "does not read well" in warning and "adds details" not in warning


def test_a_candidate_the_classifier_reads_as_critical_is_passed_over():
    assert choose_rewrite([KEEPS_PROBLEM, DROPS_PROBLEM], SENTENCE, CONTEXT,
                          critical={KEEPS_PROBLEM}) == (DROPS_PROBLEM, None)
    text, warning = choose_rewrite([KEEPS_PROBLEM], SENTENCE, CONTEXT, critical={KEEPS_PROBLEM})
    assert text is None and "still reads as critical" in warning


def test_empty_candidates_and_echoes_of_the_sentence_are_passed_over():
    echo = "The quarterly report is rubbish, and the totals don't add up!"
    assert choose_rewrite(["", echo, DROPS_PROBLEM], SENTENCE, CONTEXT) == (DROPS_PROBLEM, None)
    text, warning = choose_rewrite([echo], SENTENCE, CONTEXT)
    assert text is None and "repeats your sentence" in warning
    text, warning = choose_rewrite([], SENTENCE, CONTEXT)
    assert text is None and "the rewriter returned nothing" in warning


def test_a_given_subject_decides_what_counts_as_the_problem():
    # Guessed, the subject is "quarterly report", so "totals" is the problem; given as "totals", the
    # report is the problem and a rewrite about the totals alone does not keep it.
    about_totals = "Thanks for checking the totals. Could you look at them again?"
    assert keeps_problem(SENTENCE, about_totals)
    assert not keeps_problem(SENTENCE, about_totals, subject="the totals")


def test_judgement_words_count_as_neither_subject_nor_problem():
    assert guess_subject(SENTENCE) == "quarterly report"
    assert not keeps_subject("Your slides are rubbish.", "That is rubbish, honestly.")
    assert keeps_subject("Your slides are rubbish.", "Thanks for the slide deck.")  # "slide" matches "slides"
    assert keeps_problem("You're useless.", "How can I help?")  # nothing to keep


def test_a_candidate_about_something_else_is_passed_over():
    elsewhere = "There's a good base to build on. Could we talk about the main point?"
    assert choose_rewrite([elsewhere, DROPS_PROBLEM], SENTENCE, CONTEXT) == (DROPS_PROBLEM, None)
    text, warning = choose_rewrite([elsewhere], SENTENCE, CONTEXT)
    assert text is None and "leaves out what your sentence is about" in warning
