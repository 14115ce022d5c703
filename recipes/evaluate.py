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
from recipes.rewrite_eval import HANDWRITTEN, REAL_DEV, decoding_of, print_rewrite_table, rewriter_figures
from recipes.train_classifier import predict
from takeoff.feedback.choose import NUM_CANDIDATES
from takeoff.feedback.task import LABELS, kind_of, verdict


def app_figures(truth: list[str], probabilities: list[list[float]]) -> dict:
    """How the app reads the sentences (`verdict`): its critical/constructive accuracy, the share it
    calls unsure and its accuracy on the rest, and the critical sentences it would leave unrewritten."""
    verdicts = [verdict(p, LABELS) for p in probabilities]
    n, sure = len(truth), [(t, v) for t, v in zip(truth, verdicts) if not v.unsure]
    num_critical = sum(kind_of(t) == "critical" for t in truth)
    # The app rewrites a sentence only when its likelier kind is critical (`Feedback.needs_rewrite`).
    missed = sum(kind_of(t) == "critical" and v.kind == "constructive" for t, v in zip(truth, verdicts))
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
    parser.add_argument("--num-candidates", type=int, default=NUM_CANDIDATES,
                        help="sequences the app asks for and picks from (takeoff.feedback.choose); 1: the best only")
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
                               args.real_dev, decoding, tuple(filter(None, args.rewrite_sets.split(","))),
                               args.num_candidates),
              decoding=decoding, num_candidates=args.num_candidates)
    (args.rewriter / args.out_name).write_text(json.dumps(rw, indent=2))
    print(json.dumps(rw, indent=2))
    print_rewrite_table(rw)


if __name__ == "__main__":
    main()
