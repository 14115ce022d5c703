"""Measure both demo models and save the figures their model cards quote.

    python -m recipes.evaluate --classifier models/feedback-classifier --rewriter models/feedback-rewriter

Classifier: accuracy, macro-F1 and binary critical/constructive accuracy on the validation split
and on the hand-written test set, with confusion-matrix PNGs. Rewriter: share of rewrites the
classifier labels constructive, echoes, how often the rewrite keeps the subject (reuses a content
word of the input), how often it breaks a word (writes one that is neither in the input nor English),
how often it stutters (says a short phrase twice in a row), and sample outputs; on criticisms of several
sentences (`paragraphs_handwritten.csv`), also how often the rewrite names the subject given with each. Writes
`metrics.json` into each model folder.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, T5ForConditionalGeneration

from recipes.datasets import normalise, read_csv
from recipes.metrics import classification_report, confusion, plot_confusion
from recipes.train_classifier import predict
from takeoff.feedback.api import REWRITE_SAMPLING
from takeoff.feedback.task import LABELS, kind_of, rewrite_prompt

HANDWRITTEN = Path(__file__).parent / "testset_handwritten.csv"
# Critical sentences written by hand after the test set, to choose between rewriter settings;
# unlike the test set it was looked at, so its figures are development figures.
DEVSET = Path(__file__).parent / "devset_handwritten.csv"
# Criticisms of several sentences, like the original work's example (its first row), written by hand with
# the subject a rewrite should name; a development set, looked at while choosing training data.
PARAGRAPHS = Path(__file__).parent / "paragraphs_handwritten.csv"
HANDWRITTEN_CONTEXT = "You are giving feedback to a colleague at work"
ORIGINAL_EXAMPLE = dict(
    context="You are a manager giving feedback to your subordinate, who has been underperforming severely "
            "over the past few months.",
    negative="Your performance over the past few months has been absolutely disappointing. It doesn't seem "
             "that you've put in any effort in improving your performance at all. I'm afraid that we will "
             "have to evaluate your position in this company if this continues.")
# Words that carry the criticism rather than its subject; a rewrite should drop them.
NOT_SUBJECT = set("""the a an and or but if of to in on at for with from by about into over this that these those
it its is are was were be been being have has had do does did done not no never again just really very so too
you your yours you're i i'm me my we our us they them their he she his her who what which when why how all any
some more most much many one another again ever even only still yet also can could would should will shall may
might must get got make made let lets seriously honestly frankly absolutely completely totally entirely clearly
bad worst terrible awful useless lazy sloppy mess disaster disappointing unacceptable embarrassing amateurish
idiot stupid careless hopeless pathetic painful wrong fault blame because reason out fired replaced job warning
great wonderful amazing brilliant nice lovely sure wow oh well look think seem seems seemed guess feel feels
thing things whole kind sort bit lot always anyone anything everyone everything nobody nothing someone something
there here then than now time should mess messy garbage joke rubbish poor worse quite fine okay
better good doesn don didn isn wasn aren won can couldn put few past""".split())


def content_words(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in NOT_SUBJECT}


def keeps_subject(negative: str, rewrite: str) -> bool:
    words = content_words(negative)
    return not words or bool(words & content_words(rewrite))


def broken_words(negative: str, rewrite: str) -> list[str]:
    """Words of the rewrite that are neither in its input nor English (wordfreq knows of no use of
    them): what a copy that lost or doubled a piece of a word leaves ("the desssert menu")."""
    from wordfreq import zipf_frequency
    given = set(re.findall(r"[a-z']+", negative.lower()))
    return [w for w in re.findall(r"[a-z']+", rewrite.lower()) if w not in given and zipf_frequency(w, "en") == 0]


STUTTER = re.compile(r"\b((?:\w+ ){1,3}\w+) \1\b")


def stutters(rewrite: str) -> bool:
    """A phrase of two to four words said twice in a row ("by the end of the end of the week"):
    the no-repeat block of decoding only stops longer runs."""
    return bool(STUTTER.search(rewrite.lower()))


def rewrite_checks(rows: list[dict], outputs: list[str]) -> dict[str, list[bool]]:
    """Per rewrite: does it keep the subject of its input, break a word, stutter."""
    return dict(keep=[keeps_subject(r["negative"], o) for r, o in zip(rows, outputs)],
                broken=[bool(broken_words(r["negative"], o)) for r, o in zip(rows, outputs)],
                stutter=[stutters(o) for o in outputs])


def is_echo(negative: str, rewrite: str) -> bool:
    return normalise(negative) == normalise(rewrite) or normalise(rewrite) in normalise(negative)


@torch.no_grad()
def rewrite(model, tokenizer, rows: list[dict], max_new_tokens: int = 80, batch_size: int = 32) -> list[str]:
    outputs = []
    for start in range(0, len(rows), batch_size):
        prompts = [rewrite_prompt(r["context"], r["negative"]) for r in rows[start:start + batch_size]]
        enc = tokenizer(prompts, truncation=True, max_length=256, padding=True, return_tensors="pt")
        # The settings the web app's /v1/feedback/improve decodes with: greedy, no repeated 6-token run.
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                             no_repeat_ngram_size=REWRITE_SAMPLING.no_repeat_ngram_size)
        outputs += tokenizer.batch_decode(ids, skip_special_tokens=True)
    return outputs


def classifier_figures(model, tokenizer, out_dir: Path, data_dir: Path) -> dict:
    figures = {}
    sets = {"validation": read_csv(data_dir / "classification" / "validation.csv"), "handwritten": read_csv(HANDWRITTEN)}
    for name, rows in sets.items():
        truth = [r["label"] for r in rows]
        probabilities = predict(model, tokenizer, [r["sentence"] for r in rows])
        predicted = [LABELS[max(range(len(LABELS)), key=p.__getitem__)] for p in probabilities]
        figures[name] = dict(classification_report(truth, predicted), confusion=confusion(truth, predicted))
        plot_confusion(truth, predicted, out_dir / f"confusion_{name}.png", f"{name} ({len(rows)} sentences)")
    return figures


def rewriter_figures(generator, gen_tokenizer, classifier, cls_tokenizer, data_dir: Path, num_rows: int) -> dict:
    def critical_inputs(path: Path) -> list[dict]:
        return [dict(context=HANDWRITTEN_CONTEXT, negative=r["sentence"])
                for r in read_csv(path) if kind_of(r["label"]) == "critical"]
    sets = {"validation": read_csv(data_dir / "rewrite" / "validation.csv")[:num_rows],
            "handwritten": critical_inputs(HANDWRITTEN), "development": critical_inputs(DEVSET),
            "paragraphs": read_csv(PARAGRAPHS)}
    figures = {}
    for name, rows in sets.items():
        outputs = rewrite(generator, gen_tokenizer, rows)
        labels = [LABELS[max(range(len(LABELS)), key=p.__getitem__)] for p in predict(classifier, cls_tokenizer, outputs)]
        n, checks = len(rows), rewrite_checks(rows, outputs)
        figures[name] = dict(
            num_inputs=n, constructive_share=round(sum(kind_of(l) == "constructive" for l in labels) / n, 4),
            num_echoes=sum(is_echo(r["negative"], o) for r, o in zip(rows, outputs)),
            keep_subject_share=round(sum(checks["keep"]) / n, 4), broken_word_share=round(sum(checks["broken"]) / n, 4),
            stutter_share=round(sum(checks["stutter"]) / n, 4), num_distinct_outputs=len(set(outputs)),
            samples=[dict(input=r["negative"], rewrite=o, label=l) for r, o, l in list(zip(rows, outputs, labels))[:8]])
        if "subject" in rows[0]:
            figures[name]["names_subject_share"] = round(
                sum(r["subject"].lower() in o.lower() for r, o in zip(rows, outputs)) / n, 4)
    example = rewrite(generator, gen_tokenizer, [ORIGINAL_EXAMPLE])[0]
    figures["original_example"] = dict(ORIGINAL_EXAMPLE, rewrite=example)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier", type=Path, default=Path("models/feedback-classifier"))
    parser.add_argument("--rewriter", type=Path, default=Path("models/feedback-rewriter"))
    parser.add_argument("--data", type=Path, default=Path("data/offline"), help="folder the generator wrote")
    parser.add_argument("--num-rewrites", type=int, default=200, help="validation pairs to rewrite")
    parser.add_argument("--skip-rewriter", action="store_true")
    args = parser.parse_args(argv)
    cls_tokenizer = AutoTokenizer.from_pretrained(args.classifier)
    classifier = AutoModelForSequenceClassification.from_pretrained(args.classifier, dtype=torch.float32).eval()
    cls = classifier_figures(classifier, cls_tokenizer, args.classifier, args.data)
    (args.classifier / "metrics.json").write_text(json.dumps(cls, indent=2))
    print(json.dumps(cls, indent=2))
    if args.skip_rewriter:
        return
    gen_tokenizer = AutoTokenizer.from_pretrained(args.rewriter)
    generator = T5ForConditionalGeneration.from_pretrained(args.rewriter, dtype=torch.float32).eval()
    rw = rewriter_figures(generator, gen_tokenizer, classifier, cls_tokenizer, args.data, args.num_rewrites)
    (args.rewriter / "metrics.json").write_text(json.dumps(rw, indent=2))
    print(json.dumps(rw, indent=2))


if __name__ == "__main__":
    main()
