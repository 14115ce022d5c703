"""Load a T5-family generator or a sequence classifier from a local Hugging Face directory.

Every way a directory can be wrong (missing, unsupported architecture, no tokenizer, unreadable
weights) ends in a `ModelLoadError` whose message says what to fix; no traceback reaches a user.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kernels.devices import DTYPE_CHOICES, resolve_dtype
from kernels.linear import QUANTIZE_CHOICES, prepack_module, prepare_linears
from kernels.t5 import T5Weights, t5_weights
from scheduler.request import Task

logger = logging.getLogger(__name__)

# T5 variants whose blocks are laid out as T5's (relative bias in layer 0 only, RMS norm).
SEQ2SEQ_MODEL_TYPES = ("t5", "mt5")
# Encoder families with a sequence-classification head that this server has reason to serve.
CLASSIFIER_MODEL_TYPES = ("electra", "bert", "roberta", "xlm-roberta", "distilbert", "albert",
                          "deberta", "deberta-v2", "camembert", "mpnet", "modernbert")
# Families whose position ids start after padding_idx, leaving two fewer usable positions.
OFFSET_POSITION_MODEL_TYPES = ("roberta", "xlm-roberta", "camembert")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "vocab.txt", "vocab.json", "sentencepiece.bpe.model")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
UNBOUNDED_LENGTH = 100_000  # tokenizers without a limit report a huge model_max_length


class ModelLoadError(Exception):
    """A model directory that cannot be served; the message is meant for the person who gave it."""


@dataclass
class Seq2SeqModel:
    weights: T5Weights  # what the incremental decoder runs on
    tokenizer: Any  # a Hugging Face fast tokenizer
    config: Any  # transformers.T5Config
    path: Path
    device: torch.device
    dtype: torch.dtype
    dtype_reason: str  # why this dtype: asked for, or what `auto` found on the device
    max_input_len: int
    eos_token_id: int
    pad_token_id: int
    decoder_start_token_id: int


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


def load_generator(path, device: str = "cpu", dtype: str = "float32", quantize: str = "none") -> Seq2SeqModel:
    """A T5 / Flan-T5 / mT5 checkpoint, ready for `kernels.runner.ModelRunner`; quantize="int8"
    gives it int8 linears (CPU only, float32 between them)."""
    from transformers import T5ForConditionalGeneration

    path, config = _read_config(path, "generator")
    if config.model_type not in SEQ2SEQ_MODEL_TYPES:
        raise ModelLoadError(
            f"{path} holds a '{config.model_type}' model; the generator must be a T5-family "
            f"encoder-decoder ({', '.join(SEQ2SEQ_MODEL_TYPES)}), e.g. google/flan-t5-small.")
    torch_device, torch_dtype, reason = _device_and_dtype(device, _activation_dtype(dtype, quantize, device), path)
    tokenizer = _load_tokenizer(path)
    model = _from_pretrained(T5ForConditionalGeneration, path, torch_dtype)
    model.to(torch_device).eval()
    pad_id = config.pad_token_id if config.pad_token_id is not None else tokenizer.pad_token_id
    eos_id = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
    start_id = config.decoder_start_token_id
    if start_id is None:
        start_id = pad_id
    if pad_id is None or eos_id is None:
        raise ModelLoadError(f"{path}/config.json names no pad_token_id or eos_token_id; T5 needs both.")
    weights = prepare_linears(t5_weights(model), quantize, torch_device)
    if quantize == "int8":
        reason = "int8 linears (--quantize int8), float32 between them"
    return Seq2SeqModel(weights=weights, tokenizer=tokenizer, config=config, path=path,
                        device=torch_device, dtype=torch_dtype, dtype_reason=reason,
                        max_input_len=_tokenizer_limit(tokenizer, default=512),
                        eos_token_id=int(eos_id), pad_token_id=int(pad_id),
                        decoder_start_token_id=int(start_id))


def load_classifier(path, device: str = "cpu", dtype: str = "float32") -> ClassifierModel:
    """An encoder with a sequence-classification head (ELECTRA, BERT, RoBERTa, ...)."""
    from transformers import AutoModelForSequenceClassification

    path, config = _read_config(path, "classifier")
    if config.model_type not in CLASSIFIER_MODEL_TYPES:
        raise ModelLoadError(
            f"{path} holds a '{config.model_type}' model; the classifier must be an encoder with a "
            f"sequence-classification head ({', '.join(CLASSIFIER_MODEL_TYPES)}).")
    torch_device, torch_dtype, reason = _device_and_dtype(device, dtype, path)
    tokenizer = _load_tokenizer(path)
    model = _from_pretrained(AutoModelForSequenceClassification, path, torch_dtype)
    model.to(torch_device).eval()
    prepack_module(model, torch_device)
    id2label = config.id2label or {}
    labels = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(config.num_labels)]
    offset = 2 if config.model_type in OFFSET_POSITION_MODEL_TYPES else 0
    max_positions = getattr(config, "max_position_embeddings", UNBOUNDED_LENGTH) - offset
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return ClassifierModel(model=model, tokenizer=tokenizer, config=config, path=path,
                           device=torch_device, dtype=torch_dtype, dtype_reason=reason,
                           max_input_len=min(_tokenizer_limit(tokenizer, max_positions), max_positions),
                           labels=labels, pad_token_id=int(pad_id))


def model_task(path) -> Task:
    """What a model directory's model does (a generator, a classifier, a sentence-transformers
    embedder), from its files."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"model directory {path} does not exist (or is not a directory).")
    if (path / "modules.json").is_file():  # the sentence-transformers layout (kernels/embedder.py)
        return Task.EMBED
    path, config = _read_config(path, "model")
    if config.model_type in SEQ2SEQ_MODEL_TYPES:
        return Task.GENERATE
    if any(name.endswith("ForSequenceClassification") for name in config.architectures or []):
        return Task.CLASSIFY
    raise ModelLoadError(f"{path} holds a '{config.model_type}' model that is neither a T5-family "
                         f"generator, a sequence classifier, nor a sentence-transformers embedder "
                         f"(no modules.json).")


def _read_config(path, role: str):
    from transformers import AutoConfig

    path = Path(path).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"{role} model directory {path} does not exist (or is not a directory).")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"{path} has no config.json; point to a saved Hugging Face model directory.")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{config_file} is not readable JSON: {exc}") from None
    if not model_type:
        raise ModelLoadError(f"{config_file} has no model_type; cannot tell which architecture it is.")
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{config_file} is not a configuration this transformers version "
                             f"understands ({model_type}): {exc}") from None
    return path, config


def _activation_dtype(dtype: str, quantize: str, device: str) -> str:
    """The dtype to load in: int8 linears take and return float32."""
    if quantize not in QUANTIZE_CHOICES:
        raise ModelLoadError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not '{quantize}'.")
    if quantize == "none":
        return dtype
    if not device.startswith("cpu"):
        raise ModelLoadError("--quantize int8 runs on the CPU only (torch's dynamic int8 kernels).")
    if dtype not in ("auto", "float32"):
        raise ModelLoadError(f"--quantize int8 computes in float32 between its int8 matmuls; "
                             f"use --dtype auto or float32, not {dtype}.")
    return "float32"


def _device_and_dtype(device: str, dtype: str, path: Path) -> tuple[torch.device, torch.dtype, str]:
    if dtype not in DTYPE_CHOICES:
        raise ModelLoadError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, not '{dtype}'.")
    try:
        torch_device = torch.device(device)
    except RuntimeError:
        raise ModelLoadError(f"device must be 'cpu' or 'cuda' (optionally 'cuda:N'), not '{device}'.") from None
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but torch sees no CUDA GPU here.")
    if torch_device.type not in ("cpu", "cuda"):
        raise ModelLoadError(f"device must be 'cpu' or 'cuda', not '{device}'.")
    torch_dtype, reason = resolve_dtype(torch_device, dtype)
    logger.info("%s runs in %s on %s: %s", path, str(torch_dtype).removeprefix("torch."), torch_device, reason)
    return torch_device, torch_dtype, reason


def _load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(f"{path} has no tokenizer files (one of {', '.join(TOKENIZER_FILES)}); "
                             f"save the tokenizer next to the model with tokenizer.save_pretrained().")
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"the tokenizer in {path} could not be loaded: {exc}") from None


def _from_pretrained(model_class, path: Path, torch_dtype: torch.dtype):
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ModelLoadError(f"{path} has no weights ({' or '.join(WEIGHT_FILES[::2])}).")
    try:
        return model_class.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"the weights in {path} could not be loaded: {exc}") from None


def _tokenizer_limit(tokenizer, default: int) -> int:
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit and limit < UNBOUNDED_LENGTH else int(default)
