"""Rebuild both demo models from nothing: data, classifier, rewriter, figures, model cards.

    python -m recipes.build_demo_models          (or: make demo-models)

The defaults are the settings the shipped models were built with: on a 2-core machine shared with
other jobs, the classifier's epoch sweep (1, 2, 3, 4) ran on 800 of the training sentences.
`--full` sweeps on all of them.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from recipes import evaluate, generate_offline, train_classifier, train_rewriter
from recipes.model_cards import write_cards

BUILD_COMMAND = "python -m recipes.build_demo_models"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/offline"))
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--full", action="store_true", help="sweep the classifier on all training sentences")
    parser.add_argument("--threads", default="0", help="torch threads per training process (0: torch decides)")
    parser.add_argument("--seed", default="0")
    args = parser.parse_args(argv)
    classifier_dir, rewriter_dir = args.models / "feedback-classifier", args.models / "feedback-rewriter"
    started = time.monotonic()
    generate_offline.main(["--out", str(args.data), "--seed", args.seed])
    budget = [] if args.full else ["--max-train-rows", "800"]
    train_classifier.main(["--data", str(args.data / "classification"), "--out", str(classifier_dir),
                           "--threads", args.threads, "--seed", args.seed, "--epochs", "1,2,3,4",
                           "--batch-size", "16", *budget])
    train_rewriter.main(["--data", str(args.data / "rewrite"), "--out", str(rewriter_dir), "--threads", args.threads,
                         "--seed", args.seed, "--epochs", "0.75", "--batch-size", "16", "--lr", "2e-3",
                         "--d-model", "128", "--num-layers", "3", "--vocab-size", "4000"])
    # A second, gentler pass over half an epoch more: copying the work item improves most here.
    train_rewriter.main(["--init", str(rewriter_dir), "--data", str(args.data / "rewrite"), "--out", str(rewriter_dir),
                         "--threads", args.threads, "--seed", args.seed, "--epochs", "0.5", "--batch-size", "16",
                         "--lr", "5e-4"])
    # A third pass of 1.5 epochs at the same rate, decayed to zero: validation loss 1.50 -> 1.42.
    train_rewriter.main(["--init", str(rewriter_dir), "--data", str(args.data / "rewrite"), "--out", str(rewriter_dir),
                         "--threads", args.threads, "--seed", args.seed, "--epochs", "1.5", "--batch-size", "16",
                         "--lr", "5e-4"])
    evaluate.main(["--classifier", str(classifier_dir), "--rewriter", str(rewriter_dir), "--data", str(args.data)])
    write_cards(classifier_dir, rewriter_dir, BUILD_COMMAND)
    print(f"built both demo models in {(time.monotonic() - started) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
