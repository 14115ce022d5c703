"""What both generators share: row cleaning, dedupe, shuffle, grouped split and CSV files.

Classification rows have the columns `sentence,label`; rewrite rows `context,negative,constructive,subject`
(the subject: what the criticism is about, so a measure can tell keeping it from keeping the problem).
"""
from __future__ import annotations

import collections
import csv
import random
import re
from pathlib import Path

CLASSIFY_COLUMNS = ("sentence", "label")
REWRITE_COLUMNS = ("context", "negative", "constructive", "subject")


def normalise(text: str) -> str:
    """The key two texts are duplicates under: lower case, words only."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def clean_text(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().strip('"').strip()


def dedupe(rows: list[dict], key_columns: tuple[str, ...]) -> tuple[list[dict], int]:
    """Rows whose key columns normalise alike are kept once; returns (rows, number dropped)."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for row in rows:
        key = tuple(normalise(row[c]) for c in key_columns)
        if key in seen or not all(key):
            continue
        seen.add(key)
        kept.append(row)
    return kept, len(rows) - len(kept)


def shuffled(rows: list[dict], seed: int) -> list[dict]:
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows


def split_by_group(rows: list[dict], group_of, validation_fraction: float, seed: int
                   ) -> tuple[list[dict], list[dict]]:
    """Whole groups go to validation (by template, by context), so no group straddles the split."""
    groups = sorted({group_of(r) for r in rows})
    random.Random(seed).shuffle(groups)
    num_val = max(1, round(len(groups) * validation_fraction))
    held_out = set(groups[:num_val])
    train = [r for r in rows if group_of(r) not in held_out]
    validation = [r for r in rows if group_of(r) in held_out]
    return train, validation


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def distribution(values) -> list[tuple[str, int]]:
    """Counts, most common first: the context and label balance a generator reports."""
    return collections.Counter(values).most_common()


def write_split(out_dir: Path, task: str, train: list[dict], validation: list[dict]) -> None:
    """`<out_dir>/<task>/train.csv` and `validation.csv` with the task's columns."""
    columns = CLASSIFY_COLUMNS if task == "classification" else REWRITE_COLUMNS
    write_csv(out_dir / task / "train.csv", train, columns)
    write_csv(out_dir / task / "validation.csv", validation, columns)
