"""Read a LoRA adapter saved by PEFT (adapter_config.json + adapter_model.safetensors) and fit it
to a loaded base model's regrouped weights.

An adapter's modules are found only through the weights' `sources` (each Hugging Face
nn.Linear's name -> the field and rows it went to), so one loader serves every family that has
them. Each module's A and B are kept apart from the base: per field of the regrouped weights, the
A of its adapted modules stacked into one `down` matrix and their scaled B placed at their rows in
one `up` matrix, so a fused field (q/k/v, k/v, gate/up) takes its whole update in two matmuls.
Every way an adapter can be wrong is a `LoraError` naming the adapter and the problem.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from kernels.linear import linear_shape
from kernels.loader import ModelLoadError

CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# PEFT saves module M's matrices as base_model.model.M.lora_A.weight ([r, in]) and .lora_B.weight ([out, r]).
WEIGHT_KEY = re.compile(r"base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight")
ALL_LINEAR = "all-linear"  # PEFT's shorthand for every linear layer but the output layer
# PEFT options that change what an adapter computes, none of which this server implements.
UNSUPPORTED = {"modules_to_save": "modules_to_save (whole modules saved beside the adapter)",
               "use_dora": "DoRA (use_dora)", "lora_bias": "a bias on lora_B (lora_bias)",
               "fan_in_fan_out": "fan_in_fan_out (Conv1D weights)",
               "target_parameters": "LoRA on bare parameters (target_parameters)",
               "layer_replication": "layer_replication", "trainable_token_indices": "trainable_token_indices",
               "alora_invocation_tokens": "activated LoRA (alora_invocation_tokens)",
               "use_qalora": "QA-LoRA (use_qalora)"}


class LoraError(ModelLoadError):
    """An adapter that cannot be served on this base, or an adapter operation a runner refuses;
    the message names the adapter and the problem."""


@dataclass(frozen=True)
class ModuleUpdate:
    """One adapted module within a field: output rows [start, stop) of the field gain
    h[:, first:last] @ up.T, where h = x @ down.T of its FieldUpdate."""
    ranks: tuple[int, int]  # (first, last): its A's rows in the field's `down`
    rows: tuple[int, int]  # (start, stop)
    up: torch.Tensor  # [stop - start, last - first]: its B times its scale


@dataclass(frozen=True)
class FieldUpdate:
    """One adapter's low-rank update to one field of the regrouped weights, in the field's dtype
    and on its device: one `down` for all its modules (one matmul), then each module's `up`."""
    down: torch.Tensor  # [total rank, in_features]: each adapted module's A, stacked
    modules: tuple[ModuleUpdate, ...]

    @property
    def rows(self) -> tuple[int, int]:
        """The span of the field's output rows the update touches."""
        return min(m.rows[0] for m in self.modules), max(m.rows[1] for m in self.modules)


@dataclass(frozen=True)
class LoraAdapter:
    name: str
    path: Path
    rank: int  # r of adapter_config.json (rank_pattern may give some modules another)
    alpha: float
    use_rslora: bool  # scale alpha / sqrt(r) instead of alpha / r
    modules: tuple[str, ...]  # the Hugging Face linears it adapts
    updates: dict[tuple[str, int, str], FieldUpdate]  # (stack, layer, field) -> its update


def load_lora(name: str, path, generator) -> LoraAdapter:
    """The PEFT LoRA adapter saved in directory `path`, fitted to a loaded generator (its
    weights' `sources`, dtypes and device); raises LoraError for anything that does not fit."""
    if not isinstance(name, str) or not name:
        raise LoraError(f"an adapter needs a non-empty name, not {name!r}")
    path = Path(path).expanduser()
    if not path.is_dir():
        raise LoraError(f"adapter '{name}': {path} does not exist or is not a directory")
    config = _read_config(name, path)
    pairs, others = _read_pairs(name, path)
    _check_targets(name, config["target_modules"], pairs, generator.weights.sources)
    if others:
        raise LoraError(f"adapter '{name}': weight '{others[0]}' is not the lora_A or lora_B matrix of a "
                        f"linear layer (biases, embeddings and saved modules are not supported)")
    updates = {}
    for key, parts in _by_field(name, config, pairs, generator.weights).items():
        updates[key] = _field_update(parts, generator.device)
    return LoraAdapter(name, path, config["r"], config["lora_alpha"], config["use_rslora"],
                       tuple(sorted(pairs)), updates)


def _read_config(name: str, path: Path) -> dict:
    file = path / CONFIG_FILE
    if not file.is_file():
        raise LoraError(f"adapter '{name}': {path} has no {CONFIG_FILE}; save the adapter with "
                        f"PEFT's save_pretrained()")
    try:
        config = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise LoraError(f"adapter '{name}': {file} is not readable JSON: {exc}") from None
    if not isinstance(config, dict):
        raise LoraError(f"adapter '{name}': {file} is not a JSON object")
    if config.get("peft_type") != "LORA":
        raise LoraError(f"adapter '{name}' is a {config.get('peft_type')!r} adapter; only LoRA "
                        f"(peft_type LORA) can be served")
    for option, what in UNSUPPORTED.items():
        if config.get(option):
            raise LoraError(f"adapter '{name}' uses {what}, which this server does not support")
    r, alpha, targets = config.get("r"), config.get("lora_alpha"), config.get("target_modules")
    if not isinstance(r, int) or isinstance(r, bool) or r <= 0:
        raise LoraError(f"adapter '{name}': r must be a positive integer, not {r!r}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool):
        raise LoraError(f"adapter '{name}': lora_alpha must be a number, not {alpha!r}")
    if not (isinstance(targets, str) or (isinstance(targets, list) and targets
                                         and all(isinstance(t, str) for t in targets))):
        raise LoraError(f"adapter '{name}': target_modules must be a list of module names or a "
                        f"regular expression, not {targets!r}")
    for option in ("rank_pattern", "alpha_pattern"):
        if not isinstance(config.get(option) or {}, dict):
            raise LoraError(f"adapter '{name}': {option} must be an object, not {config[option]!r}")
    return {**config, "use_rslora": bool(config.get("use_rslora"))}


def _read_pairs(name: str, path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], list[str]]:
    """module name -> {"A": [r, in], "B": [out, r]}, and the names of any other weights."""
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    others = []
    for key, tensor in _read_tensors(name, path).items():
        match = WEIGHT_KEY.fullmatch(key)
        if match is None:
            others.append(key)
        else:
            pairs.setdefault(match["module"], {})[match["part"]] = tensor
    if not pairs:
        raise LoraError(f"adapter '{name}': {path} holds no LoRA weights")
    for module, parts in pairs.items():
        if len(parts) != 2:
            missing = "lora_B" if "A" in parts else "lora_A"
            raise LoraError(f"adapter '{name}': {module} has no {missing} weight")
    return pairs, sorted(others)


def _read_tensors(name: str, path: Path) -> dict[str, torch.Tensor]:
    file = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
    if file is None:
        raise LoraError(f"adapter '{name}': {path} has no {' or '.join(WEIGHT_FILES)}")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(file)
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file can fail in many ways; all mean the same to a user
        raise LoraError(f"adapter '{name}': {file} could not be read: {exc}") from None


def _check_targets(name: str, targets, pairs: dict, sources: dict) -> None:
    example = next(iter(sources))
    foreign = sorted(m for m in pairs if m not in sources)
    if foreign:
        raise LoraError(f"adapter '{name}' adapts {foreign[0]}, which is not an attention or "
                        f"feed-forward linear of this base model (those are named like {example}); "
                        f"it was trained for another base")
    if not any(_targeted(targets, module) for module in sources):
        raise LoraError(f"adapter '{name}': target_modules {targets!r} match none of this base "
                        f"model's linears (named like {example}); it was trained for another base")
    untargeted = sorted(m for m in pairs if not _targeted(targets, m))
    if untargeted:
        raise LoraError(f"adapter '{name}' has weights for {untargeted[0]}, which its target_modules "
                        f"{targets!r} do not name")


def _targeted(targets, module: str) -> bool:
    """PEFT's rule: a string is a regular expression the whole name must match; a list names
    modules by their full name or their last dotted parts."""
    if targets == ALL_LINEAR:
        return True
    if isinstance(targets, str):
        return re.fullmatch(targets, module) is not None
    return any(module == t or module.endswith("." + t) for t in targets)


def _pattern_value(patterns: dict, module: str, default):
    """rank_pattern / alpha_pattern: the value of the first key that matches the end of the name."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _by_field(name: str, config: dict, pairs: dict, weights) -> dict[tuple[str, int, str], list]:
    """(stack, layer, field) -> [(rows, A, B * scale, field dtype)] of the modules in that field,
    each checked against the base's shapes."""
    by_field: dict[tuple[str, int, str], list] = {}
    for module, parts in sorted(pairs.items()):
        source = weights.sources[module]
        field = getattr(getattr(weights, source.stack)[source.layer], source.field)
        a, b = parts["A"], parts["B"]
        _, in_features = linear_shape(field)
        num_rows = source.rows[1] - source.rows[0]
        if a.dim() != 2 or b.dim() != 2 or a.shape[1] != in_features or b.shape[0] != num_rows \
                or b.shape[1] != a.shape[0]:
            raise LoraError(f"adapter '{name}': {module} has lora_A {list(a.shape)} and lora_B "
                            f"{list(b.shape)}, but this base's {module} maps {in_features} inputs to "
                            f"{num_rows} outputs (A must be [r, {in_features}], B [{num_rows}, r]); it "
                            f"was trained for another base")
        rank = _pattern_value(config.get("rank_pattern"), module, config["r"])
        if a.shape[0] != rank:
            raise LoraError(f"adapter '{name}': {module} has rank {a.shape[0]}, its config says {rank}")
        alpha = _pattern_value(config.get("alpha_pattern"), module, config["lora_alpha"])
        scale = alpha / math.sqrt(rank) if config["use_rslora"] else alpha / rank
        key = (source.stack, source.layer, source.field)
        by_field.setdefault(key, []).append((source.rows, a.float(), b.float() * scale, field.dtype))
    return by_field


def _field_update(parts: list, device) -> FieldUpdate:
    dtype, modules, rank = parts[0][3], [], 0
    for rows, a, b, _ in parts:
        modules.append(ModuleUpdate((rank, rank + a.shape[0]), rows, b.to(device, dtype).contiguous()))
        rank += a.shape[0]
    down = torch.cat([a for _, a, _, _ in parts]).to(device, dtype).contiguous()  # [total rank, in_features]
    return FieldUpdate(down, tuple(modules))
