"""Sentence embeddings from a BERT-family encoder saved in the sentence-transformers layout.

The layout: modules.json lists the modules in order: a Transformer (a Hugging Face encoder in its
own directory, "" for the root), a Pooling module (its config.json names the pooling: cls, mean,
max or mean_sqrt_len_tokens, several concatenated in that order) and optionally Normalize. We load
the encoder with transformers' AutoModel from the local directory and pool as sentence-transformers
does, so vectors match its `encode` (checked in tests/model/test_kernels_embedder.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kernels.classifier import _truncate  # cut ids to a limit, keeping the last (special) token
from kernels.linear import prepack_module
from kernels.loader import CLASSIFIER_MODEL_TYPES, OFFSET_POSITION_MODEL_TYPES, ModelLoadError
from kernels.model_files import (UNBOUNDED_LENGTH, device_and_dtype, from_pretrained, load_tokenizer,
                                 read_config, tokenizer_limit)
from kernels.shapes import padded_length

# Pooling modes we compute, in the order sentence-transformers concatenates them; the legacy
# boolean keys of 1_Pooling/config.json name the same modes.
POOLING_MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                 "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens"}
UNSUPPORTED_MODES = ("pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")
MODULE_KINDS = ("Transformer", "Pooling", "Normalize")


@dataclass
class EmbeddingModel:
    model: torch.nn.Module  # transformers AutoModel (the bare encoder) in eval mode
    tokenizer: Any
    config: Any
    path: Path
    device: torch.device
    dtype: torch.dtype
    dtype_reason: str  # why this dtype: asked for, or what `auto` found on the device
    max_input_len: int  # tokens per input, special tokens included
    pooling: tuple[str, ...]  # e.g. ("mean",); several are concatenated
    normalize: bool  # unit-length vectors (a Normalize module follows the pooling)
    lowercase: bool  # sentence_bert_config.json's do_lower_case: texts are lowered first
    dim: int  # length of each vector
    pad_token_id: int


def load_embedder(path, device: str = "cpu", dtype: str = "float32") -> EmbeddingModel:
    """A sentence-transformers directory, ready for `embed`; ModelLoadError says what is wrong."""
    from transformers import AutoModel

    root = Path(path).expanduser()
    if not root.is_dir():
        raise ModelLoadError(f"embedding model directory {root} does not exist (or is not a directory).")
    modules = _read_modules(root)
    encoder_dir, config = read_config(root / modules["Transformer"], "embedding")
    if config.model_type not in CLASSIFIER_MODEL_TYPES:
        raise ModelLoadError(f"{encoder_dir} holds a '{config.model_type}' model; the embedder must be a "
                             f"BERT-family encoder ({', '.join(CLASSIFIER_MODEL_TYPES)}).")
    pooling = _read_pooling(root / modules["Pooling"] / "config.json")
    torch_device, torch_dtype, reason = device_and_dtype(device, dtype, root)
    tokenizer = load_tokenizer(encoder_dir)
    model = from_pretrained(AutoModel, encoder_dir, torch_dtype).to(torch_device).eval()
    prepack_module(model, torch_device)
    settings_file = encoder_dir / "sentence_bert_config.json"  # max_seq_length, do_lower_case
    settings = _read_json(settings_file) if settings_file.is_file() else {}
    offset = 2 if config.model_type in OFFSET_POSITION_MODEL_TYPES else 0
    max_positions = getattr(config, "max_position_embeddings", UNBOUNDED_LENGTH) - offset
    limit = settings.get("max_seq_length") or tokenizer_limit(tokenizer, max_positions)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return EmbeddingModel(model=model, tokenizer=tokenizer, config=config, path=root, device=torch_device,
                          dtype=torch_dtype, dtype_reason=reason, max_input_len=min(int(limit), max_positions), pooling=pooling,
                          normalize="Normalize" in modules, lowercase=bool(settings.get("do_lower_case")),
                          dim=config.hidden_size * len(pooling), pad_token_id=int(pad_id))


def encode_texts(model: EmbeddingModel, texts: list[str]) -> list[list[int]]:
    """Token ids with special tokens, cut to the model's limit as sentence-transformers cuts them."""
    texts = [text.lower() for text in texts] if model.lowercase else texts
    return [model.tokenizer(text, truncation=True, max_length=model.max_input_len)["input_ids"] for text in texts]


def embed(model: EmbeddingModel, inputs: list[str] | list[list[int]]) -> torch.Tensor:
    """[len(inputs), model.dim] fp32 on the CPU, one vector per text or per list of token ids
    (special tokens included; longer lists are cut, keeping their last token)."""
    if not inputs:
        return torch.zeros(0, model.dim)
    if isinstance(inputs[0], str):
        rows = encode_texts(model, inputs)
    else:
        rows = [_truncate(ids, model.max_input_len) for ids in inputs]
    lengths = torch.tensor([len(ids) for ids in rows])
    width = padded_length(int(lengths.max()), model.max_input_len)
    input_ids = torch.full((len(rows), width), model.pad_token_id, dtype=torch.long)
    for i, ids in enumerate(rows):  # [batch, width], right-padded
        input_ids[i, :len(ids)] = torch.tensor(ids)
    attention_mask = (torch.arange(width) < lengths[:, None]).long()  # [batch, width]
    with torch.inference_mode():
        hidden = model.model(input_ids=input_ids.to(model.device),
                             attention_mask=attention_mask.to(model.device)).last_hidden_state
        vectors = _pool(hidden.float(), attention_mask.to(model.device), model.pooling)  # [batch, dim]
        if model.normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
    return vectors.cpu()


def _pool(hidden: torch.Tensor, attention_mask: torch.Tensor, modes: tuple[str, ...]) -> torch.Tensor:
    """hidden [batch, len, width], attention_mask [batch, len] -> [batch, width * len(modes)]."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [batch, len, 1]
    counts = mask.sum(dim=1).clamp(min=1e-9)  # [batch, 1]
    pooled = {"cls": hidden[:, 0],  # right padding: the first token is the [CLS] of every row
              "max": hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values,
              "mean": (hidden * mask).sum(dim=1) / counts,
              "mean_sqrt_len_tokens": (hidden * mask).sum(dim=1) / counts.sqrt()}
    return torch.cat([pooled[mode] for mode in modes], dim=-1)


def _read_modules(root: Path) -> dict[str, str]:
    """modules.json -> {"Transformer": subdirectory, "Pooling": subdirectory[, "Normalize": ...]}."""
    if not (root / "modules.json").is_file():
        raise ModelLoadError(f"{root} has no modules.json; an embedding model must be saved in the "
                             f"sentence-transformers layout (SentenceTransformer.save).")
    entries = _read_json(root / "modules.json")
    found: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else []:
        kind = str(entry.get("type", "")).rsplit(".", 1)[-1]
        if kind not in MODULE_KINDS:
            raise ModelLoadError(f"{root}/modules.json has a '{entry.get('type')}' module; only "
                                 f"{', '.join(MODULE_KINDS)} are supported.")
        found[kind] = str(entry.get("path", ""))
    for kind in ("Transformer", "Pooling"):
        if kind not in found:
            raise ModelLoadError(f"{root}/modules.json names no {kind} module.")
    return found


def _read_pooling(config_file: Path) -> tuple[str, ...]:
    if not config_file.is_file():
        raise ModelLoadError(f"{config_file} is missing; it says how token vectors are pooled.")
    config = _read_json(config_file)
    if "pooling_mode" in config:  # sentence-transformers 6 and later: a name or a list of names
        named = config["pooling_mode"]
        modes = tuple([named] if isinstance(named, str) else named)
    else:
        if any(config.get(key) for key in UNSUPPORTED_MODES):
            modes = ("unsupported",)
        else:
            modes = tuple(mode for key, mode in POOLING_MODES.items() if config.get(key)) or ("mean",)
    unknown = [mode for mode in modes if mode not in POOLING_MODES.values()]
    if unknown or not modes:
        raise ModelLoadError(f"{config_file}: pooling {', '.join(map(str, unknown or ['none']))} is not "
                             f"supported (use {', '.join(POOLING_MODES.values())}).")
    return modes


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path} is not readable JSON: {exc}") from None
