"""The offline benchmark's LoRA workload: one base, four adapters, rows of all of them in each step.

lora: flan-t5-small's shape (random weights) with four PEFT adapters of rank 16 (alpha 32) on
    q, k, v, o, wi_0, wi_1 and wo of every block, their B random; the flan-t5-small workload's
    64 requests, the adapters in turn. Systems, in each dtype, in one run:
    - hf static 16, merged per adapter: PEFT's merge_and_unload() makes one full model per adapter,
      and each adapter's requests run through it in static batches of 16 (the best a user can do
      with generate; merging is not timed);
    - takeoff engine, base only: the same 64 requests with no adapter, on the plain base model;
    - takeoff engine, 4 adapters mixed: the 64 requests with their adapters, every step mixing them.
Targets (issue 28): mixed >= 80% of base-only tokens/s, and >= 1.5x the merged HF baseline.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.models import save_random_lora
from benchmarks.offline_systems import SystemResult, run_hf, run_takeoff, warm_up

NUM_ADAPTERS = 4
ADAPTER = dict(r=16, lora_alpha=32, target_modules=["q", "k", "v", "o", "wi_0", "wi_1", "wo"])
HF_BATCH_SIZE = 16
BASE_ONLY, MIXED, HF_MERGED = "takeoff engine, base only", "takeoff engine, 4 adapters mixed", \
    "hf static 16, merged per adapter"


def with_adapters(workload, tmp: Path, seed: int):
    """The flan-t5-small workload given four adapters, its requests theirs in turn."""
    adapters = {f"adapter-{i}": save_random_lora(workload.model_dir, tmp / f"lora-{i}", seed=seed + i,
                                                 b_scale=0.02, **ADAPTER)
                for i in range(NUM_ADAPTERS)}
    names = list(adapters)
    requests = [replace(r, lora_id=names[i % len(names)]) for i, r in enumerate(workload.requests)]
    return replace(workload, name="lora", requests=requests, batch_sizes=(HF_BATCH_SIZE,), adapters=adapters)


def run_lora_systems(args, workload) -> list[SystemResult]:
    results = []
    base_requests = [replace(r, lora_id=None) for r in workload.requests]
    for dtype in args.dtype:
        results.append(_tagged(run_hf_merged(args, workload, dtype), dtype))
        results.append(_tagged(run_takeoff(args, workload.model_dir, base_requests, dtype, name=BASE_ONLY), dtype))
        results.append(_tagged(run_takeoff(args, workload.model_dir, workload.requests, dtype,
                                           adapters=workload.adapters, name=MIXED), dtype))
    return results


def run_hf_merged(args, workload, dtype: str) -> SystemResult:
    """Each adapter merged into its own copy of the base; its requests in static batches."""
    from peft import PeftModel
    from transformers import T5ForConditionalGeneration

    from kernels.devices import DTYPES

    outputs: dict[int, list[int]] = {}
    total_s = cpu_s = 0.0
    for lora_id, path in workload.adapters.items():
        base = T5ForConditionalGeneration.from_pretrained(workload.model_dir, dtype=DTYPES[dtype])
        model = PeftModel.from_pretrained(base, path).merge_and_unload().to(args.device).eval()
        mine = [i for i, r in enumerate(workload.requests) if r.lora_id == lora_id]
        requests = [workload.requests[i] for i in mine]
        run_hf(model, warm_up(requests), 2, "warm-up")
        result = run_hf(model, requests, HF_BATCH_SIZE, f"hf merged {lora_id}")
        outputs.update(zip(mine, result.outputs))
        total_s, cpu_s = total_s + result.total_s, cpu_s + result.cpu_s
        del model, base
    return SystemResult(HF_MERGED, [outputs[i] for i in range(len(workload.requests))], total_s, cpu_s)


def _tagged(result: SystemResult, dtype: str) -> SystemResult:
    result.dtype = dtype
    return result


def lora_targets(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per dtype: the mixed engine's tokens/s over the base-only engine's and over merged HF's."""
    targets = {}
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        speed = {r["system"]: r["tokens_per_s"] for r in rows if r["dtype"] == dtype}
        targets[dtype] = {"mixed_vs_base_only": round(speed[MIXED] / speed[BASE_ONLY], 3),
                          "mixed_vs_hf_merged": round(speed[MIXED] / speed[HF_MERGED], 3)}
    return targets


def print_lora_targets(targets: dict) -> None:
    for dtype, t in targets.items():
        print(f"lora ({dtype}): mixed adapters {t['mixed_vs_base_only']:.0%} of base-only tokens/s "
              f"(target 80%), {t['mixed_vs_hf_merged']:.2f}x merged HF static (target 1.5x)")


def lora_profiles(args, workload, profile_decode_step, input_len: int) -> dict:
    """One decode step of 48 rows, base only and with the four adapters in turn, per dtype."""
    profiles = {}
    for dtype in args.dtype:
        for label, adapters in (("base only", None), ("4 adapters mixed", workload.adapters)):
            profiles[f"{dtype}, {label}"] = profile_decode_step(
                workload.model_dir, args.device, dtype, batch_size=min(48, len(workload.requests)),
                position=64, input_len=input_len, adapters=adapters)
    torch.set_num_threads(args.threads)
    return profiles
