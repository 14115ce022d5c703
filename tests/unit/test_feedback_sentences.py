"""Sentence splitting for the feedback coach: boundaries, and offsets into the original text."""
from __future__ import annotations

import pytest

from takeoff.feedback.sentences import split_sentences


def texts(text: str) -> list[str]:
    sentences = split_sentences(text)
    for sentence in sentences:
        assert text[sentence.start:sentence.end] == sentence.text
        assert sentence.text == sentence.text.strip()
    return [sentence.text for sentence in sentences]


def test_plain_sentences_with_each_terminal_mark():
    assert texts("Good work. Why is it late? Fix it now! ") == [
        "Good work.", "Why is it late?", "Fix it now!"]


def test_offsets_point_into_the_original_text():
    text = "  First one.   Second one.\n"
    first, second = split_sentences(text)
    assert (first.start, first.end) == (2, 12)
    assert (second.start, second.end) == (15, 26)


@pytest.mark.parametrize("text, expected", [
    ("Add tests, e.g. for the parser. Then ship.", ["Add tests, e.g. for the parser.", "Then ship."]),
    ("Talk to Dr. Smith first. She knows.", ["Talk to Dr. Smith first.", "She knows."]),
    ("Mrs. Jones and Prof. Lee agree. Good.", ["Mrs. Jones and Prof. Lee agree.", "Good."]),
    ("The U.S. team did well. Others not.", ["The U.S. team did well.", "Others not."]),
    ("Ask J. Smith. He knows.", ["Ask J. Smith.", "He knows."]),
    ("See No. 5 in the list. Fix it.", ["See No. 5 in the list.", "Fix it."]),
    ("Tools, i.e. Slack and Jira, are fine. Use them.",
     ["Tools, i.e. Slack and Jira, are fine.", "Use them."]),
])
def test_abbreviations_and_initials_do_not_end_a_sentence(text, expected):
    assert texts(text) == expected


def test_periods_inside_numbers_and_words_do_not_end_a_sentence():
    assert texts("Scores fell from 3.5 to 2.1 on example.com today. Odd.") == [
        "Scores fell from 3.5 to 2.1 on example.com today.", "Odd."]


def test_a_sentence_may_end_with_a_number_or_a_version():
    assert texts("We shipped in 2024. It went well.") == ["We shipped in 2024.", "It went well."]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    assert texts('He said "this is useless." Then he left. (That was rude.) Sorry.') == [
        'He said "this is useless."', "Then he left.", "(That was rude.)", "Sorry."]
    assert texts("“Nice work.” Keep going.") == ["“Nice work.”", "Keep going."]


def test_runs_of_marks_and_ellipses():
    assert texts("Really?! You did that... Again… Why?") == [
        "Really?!", "You did that...", "Again…", "Why?"]


def test_lower_case_after_a_mark_continues_the_sentence():
    assert texts("It was fine... mostly. Wait! not yet.") == [
        "It was fine... mostly.", "Wait! not yet."]


def test_line_breaks_end_sentences():
    assert texts("Great demo\nThe slides were a mess\r\nFix them.") == [
        "Great demo", "The slides were a mess", "Fix them."]


def test_a_hard_wrapped_sentence_is_joined_back():
    text = "Your report was late and\nthe numbers were wrong.\n\nnew paragraph here."
    assert texts(text) == ["Your report was late and\nthe numbers were wrong.",
                           "new paragraph here."]


def test_bullets_are_boundaries_and_their_markers_are_left_out():
    text = "Notes:\n- You never listen.\n* good demo\n• Thanks\n1. Fix tests\n2) Write docs\na) last"
    assert texts(text) == ["Notes:", "You never listen.", "good demo", "Thanks", "Fix tests",
                           "Write docs", "last"]


def test_whitespace_and_punctuation_only_pieces_are_not_sentences():
    assert texts("") == []
    assert texts("   \n\t ") == []
    assert texts("... !!!") == []
    assert texts("Fine. ... Next.") == ["Fine.", "Next."]


def test_unicode_text_keeps_exact_offsets():
    assert texts("Café résumé was naïve. 日本語です。テキスト！ Emoji 🙂 works!") == [
        "Café résumé was naïve.", "日本語です。", "テキスト！", "Emoji 🙂 works!"]


def test_a_sentence_without_a_final_mark_is_kept():
    assert texts("This is fine. but this has no end") == ["This is fine. but this has no end"]
    assert texts("One. Two without end") == ["One.", "Two without end"]
