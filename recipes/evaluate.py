"""Measure both demo models and save the figures their model cards quote.

    python -m recipes.evaluate --classifier models/feedback-classifier --rewriter models/feedback-rewriter

Classifier: accuracy, macro-F1 and binary critical/constructive accuracy on the validation split
and on the hand-written test set, with confusion-matrix PNGs, and how the app reads the sentences
(`takeoff.feedback.task.verdict`: the kind by probability mass, unsure below its threshold). Rewriter:
share of rewrites the classifier labels constructive, echoes, how often the rewrite keeps the subject
(reuses a content word of the input), keeps the problem (reuses a content word of the input beyond its
subject: the row's `subject` where the set gives one, else a guess), reads as garbled (a repeated
trigram, a word said three times, a word of the prompt, an unfinished sentence:
`takeoff.feedback.fluency`), breaks a word (writes one that is neither in the input nor English),
stutters (says a short phrase twice in a row) or invents a claim (a time, deadline, number, name or
event its input and context lack: `takeoff.feedback.claims`), with examples; on sets that give the
subject (`paragraphs_handwritten.csv`), also how often the rewrite names it. The rewriter decodes as
its generation_config.json says (`--num-beams`, `--no-repeat-ngram-size`, `--length-penalty` override
it to compare settings). Writes `metrics.json` (or `--out-name`) into each model folder.

`--real-dev DIR` also reads `real_feedback_dev.csv` and `real_rewrite_dev.jsonl` from DIR (the
project's real development sets, in ../shared: read there, never copied, never trained on) and
reports them as the set `real_dev`: rewrites go through the app's path (split into sentences, rewrite
those the app would, keep the rest), and only figures are saved or printed, never their text.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

from recipes.datasets import read_csv
from recipes.metrics import classification_report, confusion, plot_confusion
from recipes.rewrite_checks import invented_claims, is_echo, rewrite_checks
from recipes.train_classifier import predict
from recipes.warm_start import is_uncased
from takeoff.feedback.coach import REWRITE_SAMPLING, AnalyzedSentence, Feedback
from takeoff.feedback.sentences import split_sentences
from takeoff.feedback.task import LABELS, kind_of, rewrite_prompt, verdict
from takeoff.feedback.truecase import restore_case

HANDWRITTEN = Path(__file__).parent / "testset_handwritten.csv"
# Critical sentences written by hand after the test set, to choose between rewriter settings;
# unlike the test set it was looked at, so its figures are development figures.
DEVSET = Path(__file__).parent / "devset_handwritten.csv"
# Criticisms of several sentences, like the original work's example (its first row), written by hand with
# the subject a rewrite should name; a development set, looked at while choosing training data.
PARAGRAPHS = Path(__file__).parent / "paragraphs_handwritten.csv"
# The real development sets' files, read from the folder given with --real-dev (../shared).
REAL_DEV = ("real_feedback_dev.csv", "real_rewrite_dev.jsonl")
HANDWRITTEN_CONTEXT = "You are giving feedback to a colleague at work"
ORIGINAL_EXAMPLE = dict(
    context="You are a manager giving feedback to your subordinate, who has been underperforming severely "
            "over the past few months.",
    negative="Your performance over the past few months has been absolutely disappointing. It doesn't seem "
             "that you've put in any effort in improving your performance at all. I'm afraid that we will "
             "have to evaluate your position in this company if this continues.")
def decoding_of(model, **overrides) -> dict:
    """How the rewriter decodes: what its generation_config.json says (the server reads the same
    file), with the app's 6-token no-repeat block for a model whose config sets none, and any
    `overrides` that are not None (to compare settings)."""
    config = model.generation_config
    decoding = dict(num_beams=config.num_beams or 1, length_penalty=config.length_penalty,
                    no_repeat_ngram_size=config.no_repeat_ngram_size or REWRITE_SAMPLING.no_repeat_ngram_size)
    decoding.update({k: v for k, v in overrides.items() if v is not None})
    if decoding["num_beams"] == 1:
        decoding.pop("length_penalty")  # only beam search uses it
    return decoding


@torch.no_grad()
def rewrite(model, tokenizer, rows: list[dict], max_new_tokens: int = 80, batch_size: int = 32,
            decoding: dict | None = None) -> list[str]:
    """Greedy or beam rewrites of `rows` (`decoding_of(model)` unless given); an uncased model's text
    is written as English again (`truecase.restore_case`)."""
    decoding = decoding or decoding_of(model)
    uncased = is_uncased(tokenizer)
    outputs = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        prompts = [rewrite_prompt(r["context"], r["negative"]) for r in batch]
        enc = tokenizer(prompts, truncation=True, max_length=256, padding=True, return_tensors="pt")
        ids = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                             max_new_tokens=max_new_tokens, do_sample=False, **decoding)
        texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
        outputs += [restore_case(t, r["negative"], r["context"]) if uncased else t for t, r in zip(texts, batch)]
    return outputs


def app_figures(truth: list[str], probabilities: list[list[float]]) -> dict:
    """How the app reads the sentences (`verdict`): its critical/constructive accuracy, the share it
    calls unsure and its accuracy on the rest, and the critical sentences it would leave unrewritten."""
    verdicts = [verdict(p, LABELS) for p in probabilities]
    n, sure = len(truth), [(t, v) for t, v in zip(truth, verdicts) if not v.unsure]
    num_critical = sum(kind_of(t) == "critical" for t in truth)
    missed = sum(kind_of(t) == "critical" and v.kind == "constructive" and not v.unsure for t, v in zip(truth, verdicts))
    return dict(binary_accuracy=round(sum(kind_of(t) == v.kind for t, v in zip(truth, verdicts)) / n, 4),
                macro_f1=classification_report(truth, [v.label for v in verdicts])["macro_f1"],
                unsure_share=round(1 - len(sure) / n, 4),
                sure_binary_accuracy=round(sum(kind_of(t) == v.kind for t, v in sure) / max(1, len(sure)), 4),
                critical_left_unrewritten_share=round(missed / max(1, num_critical), 4))


def classifier_figures(model, tokenizer, out_dir: Path, data_dir: Path, real_dev: Path | None = None) -> dict:
    figures = {}
    sets = {"validation": read_csv(data_dir / "classification" / "validation.csv"), "handwritten": read_csv(HANDWRITTEN)}
    if real_dev:
        sets["real_dev"] = read_csv(real_dev / REAL_DEV[0])
    for name, rows in sets.items():
        truth = [r["label"] for r in rows]
        probabilities = predict(model, tokenizer, [r["sentence"] for r in rows])
        predicted = [LABELS[max(range(len(LABELS)), key=p.__getitem__)] for p in probabilities]
        figures[name] = dict(classification_report(truth, predicted), app=app_figures(truth, probabilities),
                             confusion=confusion(truth, predicted))
        if name != "real_dev":
            plot_confusion(truth, predicted, out_dir / f"confusion_{name}.png", f"{name} ({len(rows)} sentences)")
    return figures


def rewrite_set_figures(rows: list[dict], outputs: list[str], labels: list[str], with_text: bool) -> dict:
    n, checks = len(rows), rewrite_checks(rows, outputs)
    figures = dict(
        num_inputs=n, constructive_share=round(sum(kind_of(l) == "constructive" for l in labels) / n, 4),
        num_echoes=sum(is_echo(r["negative"], o) for r, o in zip(rows, outputs)),
        keep_subject_share=round(sum(checks["keep"]) / n, 4), keep_problem_share=round(sum(checks["problem"]) / n, 4),
        garbled_share=round(sum(checks["garbled"]) / n, 4), broken_word_share=round(sum(checks["broken"]) / n, 4),
        stutter_share=round(sum(checks["stutter"]) / n, 4), invented_claim_share=round(sum(checks["invented"]) / n, 4),
        num_distinct_outputs=len(set(outputs)))
    if "subject" in rows[0]:
        figures["names_subject_share"] = round(sum(r["subject"].lower() in o.lower() for r, o in zip(rows, outputs)) / n, 4)
    if with_text:
        figures["samples"] = [dict(input=r["negative"], rewrite=o, label=l) for r, o, l in list(zip(rows, outputs, labels))[:8]]
        figures["invented_claim_examples"] = [dict(input=r["negative"], rewrite=o, claims=invented_claims(r, o))
                                              for r, o in zip(rows, outputs) if invented_claims(r, o)][:6]
    return figures


def improve_like_the_app(generator, gen_tokenizer, classifier, cls_tokenizer, rows: list[dict],
                         decoding: dict | None = None) -> tuple[list[str], list[bool]]:
    """(improved text, left unchanged) per row, as /v1/feedback/improve makes it: each sentence read by
    `verdict`, those the app rewrites (`Feedback.needs_rewrite`) rewritten on their own, the others
    kept, the separators kept."""
    split = [split_sentences(r["negative"]) for r in rows]
    probabilities = iter(predict(classifier, cls_tokenizer, [s.text for sentences in split for s in sentences]))
    feedbacks = []
    for row, sentences in zip(rows, split):
        readings = [verdict(next(probabilities), LABELS) for _ in sentences]
        feedbacks.append(Feedback(row["negative"], row["context"], [
            AnalyzedSentence(s.text, s.start, s.end, v.label, v.score, v.kind, v.unsure) for s, v in zip(sentences, readings)]))
    todo = [(i, j) for i, f in enumerate(feedbacks) for j in range(len(f.sentences)) if f.needs_rewrite(j)]
    inputs = [dict(context=feedbacks[i].prompt_context, negative=feedbacks[i].sentences[j].text) for i, j in todo]
    rewritten = {key: o.strip() for key, o in zip(todo, rewrite(generator, gen_tokenizer, inputs, decoding=decoding)) if o.strip()}
    outputs = ["".join(f.separator_before(j) + rewritten.get((i, j), s.text) for j, s in enumerate(f.sentences))
               for i, f in enumerate(feedbacks)]
    return outputs, [not any(i == k for k, _ in rewritten) for i in range(len(rows))]


def rewriter_figures(generator, gen_tokenizer, classifier, cls_tokenizer, data_dir: Path, num_rows: int,
                     real_dev: Path | None = None, decoding: dict | None = None, only: tuple[str, ...] = ()) -> dict:
    def critical_inputs(path: Path) -> list[dict]:
        return [dict(context=HANDWRITTEN_CONTEXT, negative=r["sentence"])
                for r in read_csv(path) if kind_of(r["label"]) == "critical"]
    sets = {"validation": read_csv(data_dir / "rewrite" / "validation.csv")[:num_rows],
            "handwritten": critical_inputs(HANDWRITTEN), "development": critical_inputs(DEVSET),
            "paragraphs": read_csv(PARAGRAPHS)}
    sets = {name: rows for name, rows in sets.items() if not only or name in only}
    figures = {}

    def judged(outputs: list[str]) -> list[str]:
        return [LABELS[max(range(len(LABELS)), key=p.__getitem__)] for p in predict(classifier, cls_tokenizer, outputs)]
    for name, rows in sets.items():
        outputs = rewrite(generator, gen_tokenizer, rows, decoding=decoding)
        figures[name] = rewrite_set_figures(rows, outputs, judged(outputs), with_text=True)
    if real_dev:
        lines = (real_dev / REAL_DEV[1]).read_text(encoding="utf-8").splitlines()
        rows = [dict(context=r["context"], negative=r["feedback"], subject=r["subject"]) for r in map(json.loads, lines) if r]
        outputs, unchanged = improve_like_the_app(generator, gen_tokenizer, classifier, cls_tokenizer, rows, decoding)
        figures["real_dev"] = dict(rewrite_set_figures(rows, outputs, judged(outputs), with_text=False),
                                   left_unchanged_share=round(sum(unchanged) / len(rows), 4))
    example = rewrite(generator, gen_tokenizer, [ORIGINAL_EXAMPLE], decoding=decoding)[0]
    figures["original_example"] = dict(ORIGINAL_EXAMPLE, rewrite=example)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier", type=Path, default=Path("models/feedback-classifier"))
    parser.add_argument("--rewriter", type=Path, default=Path("models/feedback-rewriter"))
    parser.add_argument("--data", type=Path, default=Path("data/offline"), help="folder the generator wrote")
    parser.add_argument("--num-rewrites", type=int, default=200, help="validation pairs to rewrite")
    parser.add_argument("--skip-rewriter", action="store_true")
    parser.add_argument("--skip-classifier", action="store_true", help="measure the rewriter only (the classifier "
                        "still judges its rewrites)")
    parser.add_argument("--real-dev", type=Path, help="folder with the real development sets (e.g. ../shared)")
    parser.add_argument("--num-beams", type=int, help="decode with these instead of generation_config.json's")
    parser.add_argument("--no-repeat-ngram-size", type=int)
    parser.add_argument("--length-penalty", type=float)
    parser.add_argument("--out-name", default="metrics.json", help="file name of the figures in each model folder")
    parser.add_argument("--rewrite-sets", default="", help="comma-separated rewrite sets to measure (default: all), "
                        "e.g. 'development' to choose decoding settings")
    args = parser.parse_args(argv)
    cls_tokenizer = AutoTokenizer.from_pretrained(args.classifier)
    classifier = AutoModelForSequenceClassification.from_pretrained(args.classifier, dtype=torch.float32).eval()
    if not args.skip_classifier:
        cls = classifier_figures(classifier, cls_tokenizer, args.classifier, args.data, args.real_dev)
        (args.classifier / args.out_name).write_text(json.dumps(cls, indent=2))
        print(json.dumps(cls, indent=2))
    if args.skip_rewriter:
        return
    gen_tokenizer = AutoTokenizer.from_pretrained(args.rewriter)
    generator = AutoModelForSeq2SeqLM.from_pretrained(args.rewriter, dtype=torch.float32).eval()
    decoding = decoding_of(generator, num_beams=args.num_beams, no_repeat_ngram_size=args.no_repeat_ngram_size,
                           length_penalty=args.length_penalty)
    rw = dict(rewriter_figures(generator, gen_tokenizer, classifier, cls_tokenizer, args.data, args.num_rewrites,
                               args.real_dev, decoding, tuple(filter(None, args.rewrite_sets.split(",")))),
              decoding=decoding)
    (args.rewriter / args.out_name).write_text(json.dumps(rw, indent=2))
    print(json.dumps(rw, indent=2))
    print_rewrite_table(rw)


SHARES = ("constructive_share", "keep_subject_share", "keep_problem_share", "garbled_share", "invented_claim_share",
          "names_subject_share", "left_unchanged_share", "broken_word_share", "stutter_share")


def print_rewrite_table(figures: dict) -> None:
    """One line per set: the shares the rewriter's targets are about."""
    print("set".ljust(12) + "".join(name.removesuffix("_share")[:12].rjust(13) for name in SHARES))
    for name, row in figures.items():
        if isinstance(row, dict) and "num_inputs" in row:
            print(name.ljust(12) + "".join(str(row.get(k, "")).rjust(13) for k in SHARES))


if __name__ == "__main__":
    main()
