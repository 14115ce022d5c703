"""Which dtype a model runs in. `auto` takes bfloat16 where the hardware computes it natively and
float32 elsewhere; a named dtype is taken as given. The reason is kept to be shown to the user."""
from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPE_CHOICES = ("auto", *DTYPES)
MIN_CUDA_BF16_CAPABILITY = (8, 0)  # Ampere: bf16 tensor cores


def resolve_dtype(device: torch.device, requested: str) -> tuple[torch.dtype, str]:
    """(dtype, why) for `requested`, one of DTYPE_CHOICES (checked by the caller)."""
    if requested != "auto":
        return DTYPES[requested], f"{requested} as asked"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) >= MIN_CUDA_BF16_CAPABILITY:
            return torch.bfloat16, f"auto: CUDA compute capability {major}.{minor} computes bfloat16 natively"
        return torch.float32, f"auto: CUDA compute capability {major}.{minor} has no native bfloat16 (8.0+ has)"
    features = cpu_bf16_features()
    if features:
        return torch.bfloat16, f"auto: this CPU computes bfloat16 natively ({', '.join(features)})"
    return torch.float32, "auto: this CPU has neither AMX nor AVX512-BF16, so bfloat16 would be emulated"


def cpu_bf16_features() -> list[str]:
    """The instruction sets of this CPU that compute bf16 matmuls natively (oneDNN uses them)."""
    checks = (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
    return [name for name, check in checks if getattr(torch.cpu, check, lambda: False)()]
