"""Batched sequence classification: pad (to a few widths, kernels.shapes), mask, forward,
softmax in fp32."""
from __future__ import annotations

import torch

from kernels.loader import ClassifierModel
from kernels.shapes import padded_length


def encode_texts(model: ClassifierModel, texts: list[str | tuple[str, str]]) -> list[tuple[list[int], list[int] | None]]:
    """Tokenize texts or (text, text_pair) pairs, truncated to the model's limit, with special tokens."""
    segments = getattr(model.config, "type_vocab_size", 0) > 1
    encoded = []
    for text in texts:
        first, second = (text, None) if isinstance(text, str) else text
        out = model.tokenizer(first, second, truncation=True, max_length=model.max_input_len,
                              return_token_type_ids=segments)
        encoded.append((out["input_ids"], out.get("token_type_ids")))
    return encoded


def classify(model: ClassifierModel, inputs: list[tuple[list[int], list[int] | None]]) -> list[list[float]]:
    """Probabilities (one row per input, in `model.labels` order) for token ids already encoded.

    Inputs longer than the model allows are cut, keeping their final special token."""
    limit = model.max_input_len
    rows = [(_truncate(ids, limit), _truncate(types, limit) if types else None) for ids, types in inputs]
    width = padded_length(max(len(ids) for ids, _ in rows), limit)
    input_ids = torch.full((len(rows), width), model.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    token_type_ids = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, types) in enumerate(rows):  # [batch, width], right-padded
        input_ids[i, :len(ids)] = torch.tensor(ids)
        attention_mask[i, :len(ids)] = 1
        if types:
            token_type_ids[i, :len(types)] = torch.tensor(types)
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if getattr(model.config, "type_vocab_size", 0) > 1 or any(types for _, types in rows):
        batch["token_type_ids"] = token_type_ids
    batch = {name: t.to(model.device) for name, t in batch.items()}
    with torch.inference_mode():
        logits = model.model(**batch).logits  # [batch, num_labels]
    return logits.float().softmax(dim=-1).tolist()


def _truncate(ids: list[int], limit: int) -> list[int]:
    return ids if len(ids) <= limit else ids[:limit - 1] + ids[-1:]
