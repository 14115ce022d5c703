"""A tiny classifier that has learned a handful of feedback sentences by heart.

The tiny random classifier gives every sentence the same label; the feedback coach's tests need
both kinds in one text without the demo models, so this one is trained here, in about a second.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, ElectraForSequenceClassification

from tests.tiny_models import save_tiny_classifier

# sentence -> the label the classifier learns for it
LEARNED = {
    "Thanks for the clear sprint demo.": "Positive Comment",
    "Could you add the test results next time?": "Helpful Suggestion",
    "The quarterly numbers look great, well done to the whole team!": "Positive Comment",
    "Why is this still broken?": "Vague Criticism",
    "You never listen to anyone.": "Personal Attack",
    "Your report was late again and the numbers were wrong.": "Blameful Accusation",
}


def save_feedback_classifier(path: Path, max_steps: int = 300, seed: int = 0) -> Path:
    save_tiny_classifier(path, seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = ElectraForSequenceClassification.from_pretrained(path)
    label_ids = torch.tensor([model.config.label2id[label] for label in LEARNED.values()])
    batch = tokenizer(list(LEARNED), return_tensors="pt", padding=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    torch.manual_seed(seed)
    for step in range(max_steps):
        loss = model(**batch, labels=label_ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 9 and loss.item() < 0.05:
            break
    model.eval()
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(-1)
    if not torch.equal(predicted, label_ids):
        raise RuntimeError(f"the tiny feedback classifier did not learn its sentences "
                           f"(loss {loss.item():.3f})")
    model.save_pretrained(path, safe_serialization=True)
    return path
