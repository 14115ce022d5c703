"""The feedback coach's task definition, shared by the server, the recipes and the clients."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CONSTRUCTIVE_LABELS = ("Positive Comment", "Helpful Suggestion", "Balanced Criticism")
CRITICAL_LABELS = ("Vague Criticism", "Harsh Criticism", "Sarcastic Comment",
                   "Blameful Accusation", "Personal Attack", "Threat")
LABELS = CONSTRUCTIVE_LABELS + CRITICAL_LABELS


def kind_of(label: str) -> str:
    """'constructive' or 'critical' for one of the nine labels (unknown labels count critical)."""
    return "constructive" if label in CONSTRUCTIVE_LABELS else "critical"


def rewrite_prompt(context: str, feedback: str) -> str:
    """The rewriter's input, exactly as its training data was built."""
    context = context.strip().rstrip(".")
    return f"Context: {context}. Make the following feedback constructive: {feedback.strip()}"


# Below this share of the classifier's probability for the more likely kind, the coach says it is
# unsure rather than guess; /v1/feedback/improve rewrites an unsure sentence too, since a critical
# sentence left as it is costs more than a rewrite the person can ignore. Chosen on the template
# validation split (see models/feedback-classifier/README.md).
MIN_SURE_SHARE = 0.75


@dataclass(frozen=True)
class Verdict:
    label: str    # the most likely label of the more likely kind
    score: float  # the classifier's probability for `label`
    kind: str     # "constructive" | "critical": the kind whose labels hold more of the probability
    unsure: bool  # that kind holds less than MIN_SURE_SHARE of it


def verdict(probabilities: Sequence[float], labels: Sequence[str]) -> Verdict:
    """The coach's reading of one sentence from the classifier's probabilities (one per label).

    Nine labels split the probability: a sentence with Balanced Criticism 0.30 and five critical
    labels at 0.14 each is critical (0.70), though its most likely single label is constructive."""
    by_kind = {"constructive": 0.0, "critical": 0.0}
    for label, probability in zip(labels, probabilities):
        by_kind[kind_of(label)] += probability
    kind = max(by_kind, key=by_kind.get)
    best = max((i for i, label in enumerate(labels) if kind_of(label) == kind), key=probabilities.__getitem__)
    share = by_kind[kind] / (sum(by_kind.values()) or 1.0)
    return Verdict(labels[best], float(probabilities[best]), kind, share < MIN_SURE_SHARE)
