"""Reading a local Hugging Face model directory: config, tokenizer, weights, device and dtype.

Every way a directory can be wrong ends in a `ModelLoadError` naming the file (or field) to fix.
A failed load leaves nothing behind: errors are raised outside the `except` that caught them, so
no traceback keeps a half-built model alive.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from kernels.devices import DTYPE_CHOICES, resolve_dtype
from kernels.errors import ModelLoadError
from kernels.linear import QUANTIZE_CHOICES

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "vocab.txt", "vocab.json", "sentencepiece.bpe.model",
                   "source.spm")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
UNBOUNDED_LENGTH = 100_000  # tokenizers without a limit report a huge model_max_length


def read_config(path, role: str):
    """(directory, transformers config) of a model directory."""
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
    message = None
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        message = f"{config_file} is not a configuration this transformers version understands ({model_type}): {exc}"
    if message:
        raise ModelLoadError(message)
    return path, config


def activation_dtype(dtype: str, quantize: str, device: str) -> str:
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


def device_and_dtype(device: str, dtype: str, path: Path) -> tuple[torch.device, torch.dtype, str]:
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


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(f"{path} has no tokenizer files (one of {', '.join(TOKENIZER_FILES)}); "
                             f"save the tokenizer next to the model with tokenizer.save_pretrained().")
    message = None
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        message = f"the tokenizer in {path} could not be loaded: {exc}"
    raise ModelLoadError(message)


def from_pretrained(model_class, path: Path, torch_dtype: torch.dtype, strict: bool = False):
    """The model at `path`; a ModelLoadError when a weight has another shape than config.json
    gives it, or (strict) is missing from the files (transformers would leave it random)."""
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ModelLoadError(f"{path} has no weights ({' or '.join(WEIGHT_FILES[::2])}).")
    try:
        model, info = model_class.from_pretrained(path, dtype=torch_dtype, local_files_only=True,
                                                  output_loading_info=True)
        message = _missing_weights(path, info) if strict else None
        if message is None:
            return model
        del model
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        message = _shape_mismatch(path, model_class) or f"the weights in {path} could not be loaded: {exc}"
    raise ModelLoadError(message)


def _missing_weights(path: Path, info: dict) -> str | None:
    missing = sorted(info.get("missing_keys") or [])
    if not missing:
        return None
    return (f"the weights in {path} lack {len(missing)} tensor(s) the model in config.json needs, "
            f"e.g. {missing[0]}; the weights and config.json are not from the same model.")


def _shape_mismatch(path: Path, model_class) -> str | None:
    """Which tensor of model.safetensors has another shape than config.json makes it, if any."""
    from safetensors import safe_open
    from transformers import AutoConfig

    file = path / "model.safetensors"
    if not file.is_file():
        return None
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in model_class.from_config(config).state_dict().items()}
    with safe_open(file, "pt") as weights:
        for key in weights.keys():
            stored = tuple(weights.get_slice(key).get_shape())
            if key in expected and expected[key] != stored:
                return (f"{file} does not match {path / 'config.json'}: {key} is {list(stored)} in the "
                        f"weights but {list(expected[key])} by the config's sizes.")
    return None


def tokenizer_limit(tokenizer, default: int) -> int:
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit and limit < UNBOUNDED_LENGTH else int(default)
