"""Load an encoder-decoder generator of any supported family (kernels/families.py).

The Hugging Face model is loaded, checked against its config, regrouped into the kernel's
weights (kernels/regroup.py) and dropped: only the tensors the kernel uses stay. Its
generation_config.json gives the decoder start token and the model's own decoding defaults.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kernels.errors import ModelLoadError
from kernels.families import SUPPORTED_MODEL_TYPES, UnsupportedFamily, family_spec
from kernels.generation_config import GenerationDefaults, read_generation_defaults
from kernels.linear import prepare_linears
from kernels.model_files import (activation_dtype, device_and_dtype, from_pretrained, load_tokenizer,
                                 read_config, tokenizer_limit)
from kernels.regroup import seq2seq_weights
from kernels.seq2seq import Seq2SeqWeights


@dataclass
class Seq2SeqModel:
    weights: Seq2SeqWeights  # what the incremental decoder runs on
    tokenizer: Any  # a Hugging Face tokenizer
    config: Any  # the transformers config
    path: Path
    device: torch.device
    dtype: torch.dtype
    dtype_reason: str  # why this dtype: asked for, or what `auto` found on the device
    max_input_len: int
    eos_token_id: int
    pad_token_id: int
    decoder_start_token_id: int
    vocab_size: int  # rows of the output layer (>= the tokenizer's ids: T5 pads to 128)
    max_target_len: int | None  # decoder positions the model has (None: relative positions)
    generation_defaults: GenerationDefaults  # what generation_config.json sets


def load_generator(path, device: str = "cpu", dtype: str = "float32", quantize: str = "none") -> Seq2SeqModel:
    """An encoder-decoder checkpoint, ready for `kernels.runner.ModelRunner`; quantize="int8"
    gives it int8 linears (CPU only, float32 between them)."""
    from transformers import AutoModelForSeq2SeqLM

    path, config = read_config(path, "generator")
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"{path} holds a '{config.model_type}' model; the generator must be an encoder-decoder of "
            f"a supported model_type ({', '.join(SUPPORTED_MODEL_TYPES)}).")
    try:
        spec = family_spec(config)
    except UnsupportedFamily as exc:
        raise ModelLoadError(f"{path}: {exc}") from None
    torch_device, torch_dtype, reason = device_and_dtype(device, activation_dtype(dtype, quantize, device), path)
    tokenizer = load_tokenizer(path)
    model = from_pretrained(AutoModelForSeq2SeqLM, path, torch_dtype, strict=True)
    model.to(torch_device).eval()
    weights = seq2seq_weights(model, spec)
    del model  # the weights hold the tensors they use; the rest goes now
    gc.collect()
    vocab_size = _out_features(weights)
    defaults = read_generation_defaults(path, config, vocab_size)
    pad_id, eos_id, start_id = _special_ids(config, tokenizer, defaults, path)
    weights = prepare_linears(weights, quantize, torch_device)
    if quantize == "int8":
        reason = "int8 linears (--quantize int8), float32 between them"
    max_target_len = _positions(weights.decoder_embedding)
    max_input_len = tokenizer_limit(tokenizer, default=512)
    encoder_positions = _positions(weights.encoder_embedding)
    if encoder_positions is not None:
        max_input_len = min(max_input_len, encoder_positions)
    return Seq2SeqModel(weights=weights, tokenizer=tokenizer, config=config, path=path, device=torch_device,
                        dtype=torch_dtype, dtype_reason=reason, max_input_len=max_input_len,
                        eos_token_id=eos_id, pad_token_id=pad_id, decoder_start_token_id=start_id,
                        vocab_size=vocab_size, max_target_len=max_target_len, generation_defaults=defaults)


def _special_ids(config, tokenizer, defaults: GenerationDefaults, path: Path) -> tuple[int, int, int]:
    """(pad, eos, decoder start) as generate takes them: the generation config first, then
    config.json, then the tokenizer; the start token falls back to pad, as T5's is."""
    def first(*values):
        return next((v for v in values if v is not None), None)

    decoder = config.decoder if config.model_type == "encoder-decoder" else config
    pad_id = first(config.pad_token_id, decoder.pad_token_id, tokenizer.pad_token_id)
    eos_ids = defaults.eos_token_ids or _as_tuple(first(config.eos_token_id, decoder.eos_token_id))
    eos_id = first(eos_ids[0] if eos_ids else None, tokenizer.eos_token_id)
    start_id = first(defaults.decoder_start_token_id, config.decoder_start_token_id, pad_id)
    if pad_id is None or eos_id is None:
        raise ModelLoadError(f"{path}/config.json names no pad_token_id or eos_token_id (nor does the "
                             f"tokenizer); the generator needs both.")
    return int(pad_id), int(eos_id), int(start_id)


def _as_tuple(value) -> tuple:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _out_features(w: Seq2SeqWeights) -> int:
    return w.lm_head.weight.shape[0]


def _positions(embedding) -> int | None:
    """Positions an absolute table holds past its offset (None for relative positions)."""
    if embedding.positions is None:
        return None
    return embedding.positions.shape[0] - embedding.position_offset
