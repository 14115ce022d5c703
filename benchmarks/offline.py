"""Offline throughput: this engine against Hugging Face generate and CTranslate2, in-process.

    python -m benchmarks.offline --json artifacts/offline.json [--quick] [--skip-ct2]

A random model of google/flan-t5-small's shape answers the same seeded requests on every system
(inputs of 40-56 tokens, outputs of exactly 16-128 tokens). Prints a table, writes JSON (and a
PNG bar chart next to it when matplotlib is installed), and profiles one decode step.
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.models import save_random_t5
from benchmarks.offline_systems import (BenchRequest, SystemResult, make_requests, run_ct2, run_engine,
                                        run_hf)
from benchmarks.profile_step import profile_decode_step
from benchmarks.report import pyplot, save_report


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    num_requests = args.num_requests or (8 if args.quick else 64)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_random_t5(Path(tmp) / "model", seed=args.seed)
        requests = make_requests(num_requests, 32128, seed=args.seed,
                                 output_lens=(16, 32) if args.quick else (16, 128))
        results = run_systems(args, model_dir, Path(tmp), requests)
        profile = profile_decode_step(model_dir, args.device, batch_size=min(64, num_requests),
                                      position=40, input_len=48)
    report = summarize(args, requests, results, profile)
    print_table(report)
    if args.json:
        save_report(report, args.json, plot)
    return report


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results here (and a .png chart next to it)")
    parser.add_argument("--num-requests", type=int, help="default 64 (8 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few, short requests")
    parser.add_argument("--skip-ct2", action="store_true", help="leave CTranslate2 out")
    parser.add_argument("--skip-hf-sequential", action="store_true",
                        help="leave out HF one request at a time (slowest); matches_hf then uses batch 8")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--max-num-seqs", type=int, default=64, help="engine KV slots")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def run_systems(args, model_dir: Path, tmp: Path, requests: list[BenchRequest]) -> list[SystemResult]:
    from transformers import T5ForConditionalGeneration

    from kernels.loader import load_generator
    from kernels.runner import ModelRunner

    results = []
    model = T5ForConditionalGeneration.from_pretrained(model_dir).to(args.device).eval()
    if not args.skip_hf_sequential:
        results.append(run_hf(model, requests, 1, "hf sequential"))
    for batch_size in (8, 16, 64):
        if batch_size <= len(requests) or batch_size == 8:
            results.append(run_hf(model, requests, batch_size, f"hf static {batch_size}"))
    del model
    if not args.skip_ct2:
        results += run_ct2_systems(args, model_dir, tmp, requests)
    generator = load_generator(model_dir, device=args.device)
    longest = max(r.num_tokens for r in requests)
    runner = ModelRunner(generator, max_num_seqs=args.max_num_seqs, max_len=longest,
                         max_input_len=max(len(r.prompt_ids) for r in requests))
    run_engine(runner, generator.tokenizer, generator.eos_token_id, requests[:2], args.max_num_seqs)  # warm-up
    results.append(run_engine(runner, generator.tokenizer, generator.eos_token_id, requests,
                              args.max_num_seqs, name="takeoff engine"))
    return results


def run_ct2_systems(args, model_dir: Path, tmp: Path, requests) -> list[SystemResult]:
    import ctranslate2

    vocab = _vocabulary(model_dir)
    results = []
    for compute_type in ("float32", "int8"):
        out_dir = tmp / f"ct2-{compute_type}"
        ctranslate2.converters.TransformersConverter(str(model_dir)).convert(str(out_dir), quantization=compute_type)
        translator = ctranslate2.Translator(str(out_dir), device=args.device, compute_type=compute_type,
                                            intra_threads=args.threads)
        for batch_size in (16, 64):
            if batch_size <= len(requests) or batch_size == 16:
                results.append(run_ct2(translator, vocab, requests, batch_size,
                                       f"ctranslate2 {compute_type} {batch_size}"))
        del translator
    return results


def _vocabulary(model_dir: Path) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))


def summarize(args, requests, results: list[SystemResult], profile: dict) -> dict:
    reference = next((r for r in results if r.name in ("hf sequential", "hf static 8")), None)
    best_static = max((r.tokens_per_s for r in results if r.name.startswith("hf static")), default=None)
    systems = []
    for r in results:
        systems.append({"system": r.name, "tokens": r.num_tokens, "total_s": round(r.total_s, 3),
                        "tokens_per_s": round(r.tokens_per_s, 1), "cpu_s": round(r.cpu_s, 3),
                        "tokens_per_cpu_s": round(r.num_tokens / r.cpu_s, 1) if r.cpu_s else None,
                        "matches_hf": None if reference is None or r is reference else r.outputs == reference.outputs,
                        "ratio_vs_best_static": round(r.tokens_per_s / best_static, 3) if best_static else None,
                        **({"kv_cache_bytes": r.kv_cache_bytes} if r.kv_cache_bytes is not None else {})})
    return {"config": {"num_requests": len(requests), "threads": args.threads, "device": args.device,
                       "max_num_seqs": args.max_num_seqs, "matches_hf_reference": reference and reference.name,
                       "input_tokens": [min(len(r.prompt_ids) for r in requests), max(len(r.prompt_ids) for r in requests)],
                       "output_tokens": [min(r.num_tokens for r in requests), max(r.num_tokens for r in requests)],
                       "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "systems": systems, "decode_step_profile": profile}


def print_table(report: dict) -> None:
    print(f"\n{'system':<26}{'tokens':>8}{'total s':>10}{'tokens/s':>11}{'tokens/cpu-s':>14}"
          f"{'vs best static':>16}{'matches HF':>12}")
    for s in report["systems"]:
        ratio = f"{s['ratio_vs_best_static']:.2f}x" if s["ratio_vs_best_static"] else "-"
        match = "-" if s["matches_hf"] is None else str(s["matches_hf"]).lower()
        print(f"{s['system']:<26}{s['tokens']:>8}{s['total_s']:>10.2f}{s['tokens_per_s']:>11.1f}"
              f"{s['tokens_per_cpu_s'] or 0:>14.1f}{ratio:>16}{match:>12}")
    p = report["decode_step_profile"]
    print(f"\ndecode step, batch {p['batch_size']} at position {p['position']}: {p['step_ms']:.1f} ms "
          f"({p['clock']})")
    for name, ms in p["ms_by_part"].items():
        print(f"  {name:<28}{ms:8.2f} ms")


def plot(report: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    systems = report["systems"]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(systems) + 1.2))
    names = [s["system"] for s in systems]
    ax.barh(names, [s["tokens_per_s"] for s in systems],
            color=["tab:orange" if n.startswith("takeoff") else "tab:gray" for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("useful tokens / s")
    cfg = report["config"]
    ax.set_title(f"{cfg['num_requests']} requests, flan-t5-small shape, {cfg['device']}, {cfg['threads']} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
