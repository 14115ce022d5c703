"""How much memory a reader needs, and how much a device has free, before a model is loaded."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from kernels.devices import resolve_dtype
from kernels.families import decoder_cache_shape

BYTES_PER_ELEMENT = {"float32": 4, "float16": 2, "bfloat16": 2}
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
# Loading holds the checkpoint's tensors and the regrouped ones (fused q/k/v) for a moment.
LOAD_PEAK_FACTOR = 2.0


def reader_bytes(path, dtype: str, device: str, num_slots: int = 0, max_len: int = 0,
                 max_input_len: int = 0) -> int:
    """Peak bytes to load the model at `path` and (for a generator, `num_slots` > 0) its KV
    cache of self-attention `max_len` and cross-attention `max_input_len` positions per slot."""
    path = Path(path).expanduser()
    config = _config(path)
    if dtype == "auto":
        dtype = str(resolve_dtype(torch.device(device), dtype)[0]).removeprefix("torch.")
    stored = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    scale = BYTES_PER_ELEMENT.get(dtype, BYTES_PER_ELEMENT.get(stored, 4)) / \
        BYTES_PER_ELEMENT.get(stored, 4)
    weights = sum(f.stat().st_size for pattern in WEIGHT_PATTERNS for f in path.rglob(pattern))
    need = weights * scale * LOAD_PEAK_FACTOR
    if num_slots:
        layers, heads, head_dim = decoder_cache_shape(config)
        per_position = 2 * layers * heads * head_dim
        element = 4  # the KV cache is float32 whatever the weights' dtype (kernels/runner.py)
        need += num_slots * (max_len + max_input_len) * per_position * element
    return int(need)


def available_bytes(device: str) -> int:
    """Memory the device can give a new model now: free GPU memory, or the host's available
    memory (MemAvailable) for the CPU."""
    torch_device = torch.device(device)
    if torch_device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(torch_device)
        return int(free)
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 1 << 62  # unknown: do not refuse


def _config(path: Path) -> dict:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return {}
