"""What the load benchmark sends: seeded lists of calls, one per request.

- generation: prompts of seeded random token ids (as text a `save_readable_t5` tokenizer reads
  back exactly) asking for an exact number of new tokens (min = max), or rows of a CSV;
- classification: single sentences from recipes/testset_handwritten.csv;
- feedback: the coach's flow over recipes/paragraphs_handwritten.csv (analyze a paragraph, then
  stream the rewrite of its critical sentences).
"""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.models import FIRST_WORD_ID, ids_as_text

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
SENTENCES_CSV = RECIPES / "testset_handwritten.csv"
PARAGRAPHS_CSV = RECIPES / "paragraphs_handwritten.csv"
KINDS = ("generation", "classification", "feedback")
STREAMED = ("generation", "feedback")  # the workloads a streaming server answers piece by piece


@dataclass(frozen=True)
class Call:
    kind: str  # one of KINDS
    body: dict = field(hash=False)  # the JSON body of its (first) request


def generation_calls(num_calls: int, seed: int = 0, input_lens=(40, 56), output_lens=(16, 128),
                     vocab_size: int = 32128) -> list[Call]:
    """Inputs of input_lens tokens (EOS included), outputs of exactly output_lens tokens."""
    rng = random.Random(seed)
    calls = []
    for _ in range(num_calls):
        ids = [rng.randrange(FIRST_WORD_ID, vocab_size) for _ in range(rng.randint(*input_lens) - 1)]
        num_tokens = rng.randint(*output_lens)
        calls.append(Call("generation", {"text": ids_as_text(ids), "max_new_tokens": num_tokens,
                                         "min_new_tokens": num_tokens}))
    return calls


def csv_calls(path: Path, num_calls: int, seed: int = 0) -> list[Call]:
    """Rows of a CSV with a `text` column and optional `max_new_tokens`, `min_new_tokens`,
    drawn in a seeded order (repeated when num_calls is larger than the file)."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    if not rows or "text" not in rows[0]:
        raise ValueError(f"{path} needs a header with a 'text' column and at least one row")
    calls = []
    for row in _drawn(rows, num_calls, seed):
        body = {"text": row["text"]}
        for name in ("max_new_tokens", "min_new_tokens"):
            if row.get(name):
                body[name] = int(row[name])
        calls.append(Call("generation", body))
    return calls


def classification_calls(num_calls: int, seed: int = 0) -> list[Call]:
    sentences = [row["sentence"] for row in _read(SENTENCES_CSV)]
    return [Call("classification", {"text": s}) for s in _drawn(sentences, num_calls, seed)]


def feedback_calls(num_calls: int, seed: int = 0) -> list[Call]:
    rows = _read(PARAGRAPHS_CSV)
    return [Call("feedback", {"text": row["negative"], "context": row["context"]})
            for row in _drawn(rows, num_calls, seed)]


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _drawn(items: list, num_items: int, seed: int) -> list:
    """num_items of items in a seeded shuffled order, going round again when they run out."""
    rng = random.Random(seed)
    drawn: list = []
    while len(drawn) < num_items:
        batch = list(items)
        rng.shuffle(batch)
        drawn += batch
    return drawn[:num_items]
