"""The bundled demo models load with plain transformers and do their job on plain sentences."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, T5ForConditionalGeneration

from recipes.rewrite_checks import broken_words, is_echo
from takeoff.feedback.keeps import keeps_subject
from takeoff.feedback.task import LABELS, kind_of, rewrite_prompt
from takeoff.feedback.sentences import split_sentences

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def classifier():
    path = MODELS / "feedback-classifier"
    return AutoTokenizer.from_pretrained(path), AutoModelForSequenceClassification.from_pretrained(path).eval()


@pytest.fixture(scope="module")
def rewriter():
    path = MODELS / "feedback-rewriter"
    return AutoTokenizer.from_pretrained(path), T5ForConditionalGeneration.from_pretrained(path).eval()


def test_both_fit_the_size_budget_in_fp16():
    files = list(MODELS.glob("feedback-*/*.safetensors"))
    assert len(files) == 2 and sum(f.stat().st_size for f in files) < 150e6
    for name in ("feedback-classifier", "feedback-rewriter"):
        assert json.loads((MODELS / name / "config.json").read_text())["dtype"] == "float16"
        assert (MODELS / name / "README.md").exists()
    assert "Apache License" in (MODELS / "feedback-classifier" / "LICENSE").read_text()


def test_classifier_has_the_nine_labels_and_a_full_vocabulary(classifier):
    tokenizer, model = classifier
    assert [model.config.id2label[i] for i in range(len(LABELS))] == list(LABELS)
    assert type(model).__name__ == "ElectraForSequenceClassification"
    assert len(tokenizer) == model.config.vocab_size == 30522


@pytest.mark.parametrize("sentence,kind", [
    ("Great job on the quarterly forecast, the client loved it!", "constructive"),
    ("Could you add a short summary to the top of the onboarding guide?", "constructive"),
    ("If the sprint demo is late again, you're fired.", "critical"),
    ("You are lazy and useless.", "critical"),
])
def test_classifier_tells_critical_from_constructive(classifier, sentence, kind):
    tokenizer, model = classifier
    with torch.no_grad():
        probabilities = model(**tokenizer([sentence], return_tensors="pt")).logits.softmax(-1)[0]
    assert abs(probabilities.sum().item() - 1) < 1e-4
    assert kind_of(LABELS[int(probabilities.argmax())]) == kind


def test_rewriter_tokenizer_covers_ordinary_english(rewriter):
    tokenizer, model = rewriter
    assert len(tokenizer) == model.config.vocab_size
    assert tokenizer.pad_token_id == 0 and tokenizer.eos_token_id == 1
    ids = tokenizer("The quarterly forecast was late and the spreadsheet had errors.")["input_ids"]
    assert tokenizer.unk_token_id not in ids and ids[-1] == tokenizer.eos_token_id


@pytest.mark.parametrize("context,negative", [
    ("You are an audit manager at an accounting firm", "The quarterly forecast is a complete disaster."),
    ("You manage a developer at a software company", "Oh great, the sprint demo is late again."),
])
def test_rewriter_keeps_the_subject_without_echoing(rewriter, context, negative):
    tokenizer, model = rewriter
    enc = tokenizer([rewrite_prompt(context, negative)], return_tensors="pt")
    with torch.no_grad():
        output = tokenizer.decode(model.generate(**enc, max_new_tokens=60, do_sample=False)[0], skip_special_tokens=True)
    assert output and not is_echo(negative, output)
    assert keeps_subject(negative, output), output
    assert not broken_words(negative, output), output


def test_a_stutter_is_a_short_phrase_said_twice_in_a_row():
    from recipes.rewrite_checks import stutters
    assert stutters("Could you send it by the end of the end of the week?")
    assert stutters("Thanks for your in your in your plan.")
    assert not stutters("Thanks for the plan. Could you share the plan by Friday?")
    assert not stutters("It was a long, long day.")  # one repeated word is English, not a loop


def test_a_broken_word_is_one_neither_in_the_input_nor_english():
    negative = "The dessert menu for the zorblax launch is a mess."
    assert broken_words(negative, "Let's go through the dessert menu for the zorblax launch together.") == []
    assert broken_words(negative, "Thanks for the desssert menu; the zorblaxx launch is close.") == ["desssert", "zorblaxx"]


def test_paragraph_set_names_each_subject_and_starts_with_the_original_example():
    from recipes.datasets import read_csv
    from recipes.rewrite_eval import ORIGINAL_EXAMPLE, PARAGRAPHS
    rows = read_csv(PARAGRAPHS)
    assert len(rows) >= 20 and rows[0]["negative"].replace("’", "'") == ORIGINAL_EXAMPLE["negative"]
    for row in rows:
        assert row["context"] and row["subject"].lower() in row["negative"].lower(), row
        assert len(split_sentences(row["negative"])) >= 2, row
