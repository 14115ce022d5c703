"""Load a generator (an encoder-decoder: kernels/generator.py), a sequence classifier or an
embedder from a local Hugging Face directory, and tell which of them a directory holds.

Every way a directory can be wrong (missing, unsupported architecture, no tokenizer, unreadable
weights) ends in a `ModelLoadError` whose message says what to fix; no traceback reaches a user.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kernels.errors import ModelLoadError
from kernels.families import SUPPORTED_MODEL_TYPES
from kernels.generator import Seq2SeqModel, load_generator
from kernels.linear import prepack_module
from kernels.model_files import (UNBOUNDED_LENGTH, device_and_dtype, from_pretrained, load_tokenizer,
                                 read_config, tokenizer_limit)
from scheduler.request import Task

__all__ = ["ClassifierModel", "ModelLoadError", "Seq2SeqModel", "load_classifier", "load_generator",
           "model_task"]

# Encoder families with a sequence-classification head that this server has reason to serve.
CLASSIFIER_MODEL_TYPES = ("electra", "bert", "roberta", "xlm-roberta", "distilbert", "albert",
                          "deberta", "deberta-v2", "camembert", "mpnet", "modernbert")
# Families whose position ids start after padding_idx, leaving two fewer usable positions.
OFFSET_POSITION_MODEL_TYPES = ("roberta", "xlm-roberta", "camembert")


@dataclass
class ClassifierModel:
    model: torch.nn.Module  # an AutoModelForSequenceClassification in eval mode
    tokenizer: Any
    config: Any
    path: Path
    device: torch.device
    dtype: torch.dtype
    dtype_reason: str
    max_input_len: int
    labels: list[str]  # label of each output column, from config.id2label
    pad_token_id: int


def load_classifier(path, device: str = "cpu", dtype: str = "float32") -> ClassifierModel:
    """An encoder with a sequence-classification head (ELECTRA, BERT, RoBERTa, ...)."""
    from transformers import AutoModelForSequenceClassification

    path, config = read_config(path, "classifier")
    if config.model_type not in CLASSIFIER_MODEL_TYPES:
        raise ModelLoadError(
            f"{path} holds a '{config.model_type}' model; the classifier must be an encoder with a "
            f"sequence-classification head ({', '.join(CLASSIFIER_MODEL_TYPES)}).")
    torch_device, torch_dtype, reason = device_and_dtype(device, dtype, path)
    tokenizer = load_tokenizer(path)
    model = from_pretrained(AutoModelForSequenceClassification, path, torch_dtype)
    model.to(torch_device).eval()
    prepack_module(model, torch_device)
    id2label = config.id2label or {}
    labels = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(config.num_labels)]
    offset = 2 if config.model_type in OFFSET_POSITION_MODEL_TYPES else 0
    max_positions = getattr(config, "max_position_embeddings", UNBOUNDED_LENGTH) - offset
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return ClassifierModel(model=model, tokenizer=tokenizer, config=config, path=path,
                           device=torch_device, dtype=torch_dtype, dtype_reason=reason,
                           max_input_len=min(tokenizer_limit(tokenizer, max_positions), max_positions),
                           labels=labels, pad_token_id=int(pad_id))


def model_task(path) -> Task:
    """What a model directory's model does (a generator, a classifier, a sentence-transformers
    embedder), from its files."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"model directory {path} does not exist (or is not a directory).")
    if (path / "modules.json").is_file():  # the sentence-transformers layout (kernels/embedder.py)
        return Task.EMBED
    path, config = read_config(path, "model")
    if any(name.endswith("ForSequenceClassification") for name in config.architectures or []):
        return Task.CLASSIFY
    if config.model_type in SUPPORTED_MODEL_TYPES:
        return Task.GENERATE
    raise ModelLoadError(f"{path} holds a '{config.model_type}' model that is neither an encoder-decoder "
                         f"generator ({', '.join(SUPPORTED_MODEL_TYPES)}), a sequence classifier, nor a "
                         f"sentence-transformers embedder (no modules.json).")
