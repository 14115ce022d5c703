"""Classification figures: accuracy, macro-F1, binary critical/constructive accuracy, confusion matrix."""
from __future__ import annotations

from pathlib import Path

from takeoff.feedback.task import LABELS, kind_of


def confusion(truth: list[str], predicted: list[str], labels=LABELS) -> list[list[int]]:
    """counts[true_index][predicted_index]"""
    index = {label: i for i, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for t, p in zip(truth, predicted):
        counts[index[t]][index[p]] += 1
    return counts


def macro_f1(truth: list[str], predicted: list[str], labels=LABELS) -> float:
    scores = []
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(truth, predicted))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
    return sum(scores) / len(scores)


def classification_report(truth: list[str], predicted: list[str]) -> dict:
    n = max(1, len(truth))
    return dict(num_examples=len(truth),
                accuracy=round(sum(t == p for t, p in zip(truth, predicted)) / n, 4),
                macro_f1=round(macro_f1(truth, predicted), 4),
                binary_accuracy=round(sum(kind_of(t) == kind_of(p) for t, p in zip(truth, predicted)) / n, 4))


def plot_confusion(truth: list[str], predicted: list[str], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    counts = confusion(truth, predicted)
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
    ax.set_yticks(range(len(LABELS)), LABELS)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            if value:
                ax.text(j, i, str(value), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
