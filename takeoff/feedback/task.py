"""The feedback coach's task definition, shared by the server, the recipes and the clients."""
from __future__ import annotations

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
