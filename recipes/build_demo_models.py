"""Rebuild both demo models from nothing: data, classifier, rewriter, figures, model cards.

    python -m recipes.build_demo_models          (or: make demo-models)

The classifier (two epochs on every training sentence) and the rewriter (a BERT2BERT warm-started from
MiniLM: copying practice, then the pairs, keeping its best checkpoint) train side by side, one CPU
thread each: on a small machine two single-thread jobs get more done than one job on two threads. The
classifier's log goes to `<data>/classifier.log`.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from recipes import evaluate, generate_offline, train_rewriter
from recipes.model_cards import write_cards

BUILD_COMMAND = "python -m recipes.build_demo_models"
# How the rewriter decodes, chosen on the development set (recipes/devset_handwritten.csv) and
# written into its generation_config.json, which the server and recipes.evaluate read.
DECODING = ["--num-beams", "4", "--no-repeat-ngram-size", "4", "--length-penalty", "1.0"]


def classifier_command(args, classifier_dir: Path) -> list[str]:
    # Two epochs in bf16 (AMX): the epoch sweep (1, 2, 3 and 4 epochs, ten epochs of compute) kept
    # 2 epochs in the last two builds, and the warm-started rewriter needs the time.
    return [sys.executable, "-m", "recipes.train_classifier", "--data", str(args.data / "classification"),
            "--out", str(classifier_dir), "--threads", args.threads, "--seed", args.seed, "--epochs", "2", "--bf16",
            "--batch-size", "32", "--lr", "1e-4", "--token-dropout", "0.15", "--group-by-length"]


def train_rewriter_passes(args, rewriter_dir: Path) -> None:
    """A BERT2BERT from MiniLM (recipes.warm_start), in bf16: copy practice (writing back 1-5 random
    English words, so the new cross-attention learns to copy a subject it never saw), then the pairs,
    keeping the checkpoint whose rewrites of held-out pairs are cleanest as the model will decode them
    (the decoding below, written into generation_config.json)."""
    train_rewriter.main(["--data", str(args.data / "rewrite"), "--out", str(rewriter_dir), "--threads", args.threads,
                         "--seed", args.seed, "--family", "bert2bert", "--bf16", "--batch-size", "16",
                         "--copy-steps", "150", "--copy-batch-size", "32", "--copy-lr", "3e-4",
                         "--epochs", "0.8", "--lr", "3e-4", "--pick-every", "250", "--pick-rows", "150",
                         *DECODING])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/offline"))
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--threads", default="1", help="torch threads for each of the two training jobs")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--real-dev", type=Path, default=Path("../shared"),
                        help="folder with the project's real development sets; reported when both files are there")
    args = parser.parse_args(argv)
    classifier_dir, rewriter_dir = args.models / "feedback-classifier", args.models / "feedback-rewriter"
    started = time.monotonic()
    generate_offline.main(["--out", str(args.data), "--seed", args.seed])
    log_path = args.data / "classifier.log"
    print(f"training the classifier in the background (log: {log_path})")
    with open(log_path, "w") as log:
        classifier = subprocess.Popen(classifier_command(args, classifier_dir), stdout=log, stderr=subprocess.STDOUT)
        try:
            train_rewriter_passes(args, rewriter_dir)
            print("rewriter done; waiting for the classifier")
            if classifier.wait() != 0:
                sys.exit(f"classifier training failed (exit {classifier.returncode}); see {log_path}")
        finally:
            if classifier.poll() is None:
                classifier.terminate()
    real_dev = ["--real-dev", str(args.real_dev)] if all((args.real_dev / name).exists() for name in evaluate.REAL_DEV) else []
    evaluate.main(["--classifier", str(classifier_dir), "--rewriter", str(rewriter_dir), "--data", str(args.data), *real_dev])
    minutes = (time.monotonic() - started) / 60
    write_cards(classifier_dir, rewriter_dir, BUILD_COMMAND, minutes)
    print(f"built both demo models in {minutes:.1f} minutes")


if __name__ == "__main__":
    main()
