"""Offline throughput: this engine against Hugging Face generate and CTranslate2, in one process.

    python -m benchmarks.offline --json artifacts/offline.json [--workload long-prompt]
        [--dtype float32,bfloat16] [--threads 2] [--quick] [--skip-ct2]

Each workload (benchmarks/offline_workloads.py: flan-t5-small, long-prompt;
benchmarks/offline_beam.py: flan-t5-small-beams, num_beams 4) is a random model answering seeded
requests that each want an exact number of tokens. In every dtype asked for,
Hugging Face static batching runs at the workload's batch sizes and then the engine (the
server's EngineCore.step() over the scheduler and runner) in the same dtype; then the engine with
int8 linears, and CTranslate2 in float32 and int8 (its CPU build has no bf16 here). Each row is
compared with the best HF static row of its dtype (float32 for int8) and with the best
CTranslate2 row; agreement is the share of HF's tokens (same dtype, else float32) produced before
each sequence's first difference. Prints tables and one decode step's profile per dtype; writes
JSON (and a PNG chart next to it when matplotlib is installed).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.offline_beam import BEAM_WORKLOADS
from benchmarks.offline_systems import SystemResult, load_hf, run_ct2, run_engine, warm_up
from benchmarks.offline_workloads import WORKLOADS, Workload
from benchmarks.profile_step import profile_decode_step
from benchmarks.report import pyplot, save_report
from kernels.devices import DTYPES


ALL_WORKLOADS = {**WORKLOADS, **BEAM_WORKLOADS}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {"config": run_config(args), "workloads": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.workload:
            workload = ALL_WORKLOADS[name](Path(tmp), args.seed, args.num_requests, args.quick)
            results = run_systems(args, workload, Path(tmp))
            profiles = {dtype: profile_decode_step(workload.model_dir, args.device, dtype,
                                                   batch_size=min(48, len(workload.requests)),
                                                   position=64, input_len=_typical_input(workload),
                                                   num_beams=workload.num_beams)
                        for dtype in args.dtype + ([] if args.skip_int8 else ["int8"])}
            report["workloads"][name] = summarize(workload, results, profiles)
            if workload.report is not None:
                report["workloads"][name]["more"] = workload.report(workload, args.device)
            print_tables(name, report["workloads"][name])
    if args.json:
        save_report(report, args.json, plot)
    return report


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results here (and a .png chart next to it)")
    parser.add_argument("--workload", type=_names(ALL_WORKLOADS), default=list(ALL_WORKLOADS),
                        help=f"comma-separated, of {', '.join(ALL_WORKLOADS)} (default: all)")
    parser.add_argument("--dtype", type=_names(DTYPES), default=["float32", "bfloat16"],
                        help="comma-separated dtypes of the HF and engine rows (default: float32,bfloat16)")
    parser.add_argument("--num-requests", type=int, help="default: the workload's (8 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few, short requests")
    parser.add_argument("--skip-ct2", action="store_true", help="leave CTranslate2 out")
    parser.add_argument("--skip-int8", action="store_true", help="leave out the engine with int8 linears")
    parser.add_argument("--threads", type=int, default=2, help="torch and CTranslate2 threads (default 2)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--max-num-seqs", type=int,
                        help="engine KV slots (default: one per sequence, num_beams per request)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def _names(choices):
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        return names
    return parse


def run_config(args) -> dict:
    return {"threads": args.threads, "device": args.device, "dtypes": args.dtype,
            "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "load_average": _load_average(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            # PASSIVE keeps OpenMP threads from spinning at barriers: on a shared, loaded machine
            # spinning made HF 8x and the engine 15x slower (2.1 / 3.6 against 17.2 / 52.2 tokens/s).
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def run_systems(args, workload: Workload, tmp: Path) -> list[SystemResult]:
    results = []
    for dtype in args.dtype:
        model = load_hf(workload.model_dir, dtype, args.device, workload.requests)
        for batch_size in workload.batch_sizes:
            results.append(_tagged(workload.run_hf(model, workload.requests, batch_size, f"hf static {batch_size}"),
                                   dtype))
        del model
        results.append(_tagged(run_takeoff(args, workload, dtype), dtype))
    if not args.skip_int8:
        results.append(_tagged(run_takeoff(args, workload, "float32", quantize="int8"), "int8"))
    if not args.skip_ct2:
        results += run_ct2_systems(args, workload, tmp)
    return results


def run_takeoff(args, workload: Workload, dtype: str, quantize: str = "none") -> SystemResult:
    from kernels.loader import load_generator
    from kernels.runner import ModelRunner

    requests = workload.requests
    generator = load_generator(workload.model_dir, device=args.device, dtype=dtype, quantize=quantize)
    num_slots = args.max_num_seqs or sum(r.sampling.num_beams for r in requests)
    runner = ModelRunner(generator, max_num_seqs=num_slots, max_len=max(r.num_tokens for r in requests),
                         max_input_len=max(len(r.prompt_ids) for r in requests))
    run_engine(runner, generator.tokenizer, generator.eos_token_id, warm_up(requests), num_slots)
    return run_engine(runner, generator.tokenizer, generator.eos_token_id, requests, num_slots,
                      name="takeoff engine")


def run_ct2_systems(args, workload: Workload, tmp: Path) -> list[SystemResult]:
    import ctranslate2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(workload.model_dir)
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    results = []
    for compute_type in ("float32", "int8"):
        out_dir = tmp / f"ct2-{workload.name}-{compute_type}"
        converter = ctranslate2.converters.TransformersConverter(str(workload.model_dir))
        converter.convert(str(out_dir), quantization=compute_type)
        translator = ctranslate2.Translator(str(out_dir), device=args.device, compute_type=compute_type,
                                            intra_threads=args.threads)
        run_ct2(translator, vocab, warm_up(workload.requests), 2, "warm-up", workload.num_beams)
        for batch_size in workload.batch_sizes:
            result = run_ct2(translator, vocab, workload.requests, batch_size, f"ctranslate2 {batch_size}",
                             workload.num_beams)
            results.append(_tagged(result, compute_type))
        del translator
    return results


def _tagged(result: SystemResult, dtype: str) -> SystemResult:
    result.dtype = dtype
    return result


def _typical_input(workload: Workload) -> int:
    lengths = sorted(len(r.prompt_ids) for r in workload.requests)
    return lengths[len(lengths) // 2]


def summarize(workload: Workload, results: list[SystemResult], profiles: dict) -> dict:
    """One row per system; ratios against the best HF static row of the same dtype (float32 for
    CTranslate2) and, for the engine, the best CTranslate2 row; agreement with HF's tokens."""
    best_hf: dict[str, float] = {}
    for r in results:
        if r.name.startswith("hf"):
            best_hf[r.dtype] = max(best_hf.get(r.dtype, 0.0), r.tokens_per_s)
    best_ct2 = max((r.tokens_per_s for r in results if r.name.startswith("ctranslate2")), default=None)
    rows = []
    for r in results:
        baseline = r.dtype if r.dtype in best_hf else "float32"
        reference = _reference(results, baseline)
        row = {"system": r.name, "dtype": r.dtype, "tokens": r.num_tokens, "total_s": round(r.total_s, 3),
               "tokens_per_s": round(r.tokens_per_s, 1), "cpu_s": round(r.cpu_s, 3),
               "vs_best_hf_static": round(r.tokens_per_s / best_hf[baseline], 3) if baseline in best_hf else None,
               "vs_best_ctranslate2": round(r.tokens_per_s / best_ct2, 3) if best_ct2 else None,
               "matches_hf": r.outputs == reference.outputs if reference else None,
               "agreement_with_hf": round(agreement(r.outputs, reference.outputs), 4) if reference else None}
        if r.kv_cache_bytes is not None:
            row["kv_cache_bytes"] = r.kv_cache_bytes
        rows.append(row)
    requests = workload.requests
    return {"num_requests": len(requests), "load_average_after": _load_average(), "batch_sizes": list(workload.batch_sizes),
            "input_tokens": [min(len(r.prompt_ids) for r in requests), max(len(r.prompt_ids) for r in requests)],
            "output_tokens": [min(r.num_tokens for r in requests), max(r.num_tokens for r in requests)],
            "reference": "the first HF static row of the same dtype (float32 for CTranslate2)",
            "systems": rows, "decode_step_profiles": profiles}


def _reference(results: list[SystemResult], dtype: str) -> SystemResult | None:
    return next((r for r in results if r.dtype == dtype and r.name.startswith("hf")), None)


def agreement(outputs: list[list[int]], references: list[list[int]]) -> float:
    """Share of the reference's tokens produced before each sequence's first difference."""
    matched = 0
    for output, reference in zip(outputs, references):
        n = 0
        while n < min(len(output), len(reference)) and output[n] == reference[n]:
            n += 1
        matched += n
    return matched / max(1, sum(len(r) for r in references))


def print_tables(name: str, summary: dict) -> None:
    print(f"\n{name}: {summary['num_requests']} requests, inputs {summary['input_tokens']} tokens, "
          f"outputs {summary['output_tokens']} tokens")
    print(f"{'system':<24}{'dtype':<10}{'tokens':>8}{'total s':>9}{'tokens/s':>10}{'vs best HF':>12}"
          f"{'vs best CT2':>13}{'matches HF':>12}{'agreement':>11}")
    for s in summary["systems"]:
        ct2 = f"{s['vs_best_ctranslate2']:.2f}x" if s["vs_best_ctranslate2"] else "-"
        print(f"{s['system']:<24}{s['dtype']:<10}{s['tokens']:>8}{s['total_s']:>9.2f}{s['tokens_per_s']:>10.1f}"
              f"{s['vs_best_hf_static'] or 0:>11.2f}x{ct2:>13}{str(s['matches_hf']).lower():>12}"
              f"{s['agreement_with_hf']:>11.4f}")
    for dtype, p in summary["decode_step_profiles"].items():
        print(f"\ndecode step ({dtype}), batch {p['batch_size']} at position {p['position']}, input "
              f"{p['input_len']}: {p['step_ms']:.1f} ms wall ({p['profiled_step_ms']:.1f} ms profiled)")
        for part, ms in p["ms_by_part"].items():
            print(f"  {part:<48}{ms:8.2f} ms")
    if "more" in summary:
        print(json.dumps(summary["more"], indent=1))


def plot(report: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    workloads = report["workloads"]
    fig, axes = plt.subplots(len(workloads), 1, squeeze=False,
                             figsize=(9, sum(0.4 * len(w["systems"]) + 1.2 for w in workloads.values())))
    for ax, (name, summary) in zip(axes[:, 0], workloads.items()):
        names = [f"{s['system']} ({s['dtype']})" for s in summary["systems"]]
        ax.barh(names, [s["tokens_per_s"] for s in summary["systems"]],
                color=["tab:orange" if n.startswith("takeoff") else "tab:gray" for n in names])
        ax.invert_yaxis()
        ax.set_xlabel("useful tokens / s")
        ax.set_title(f"{name}: {summary['num_requests']} requests, {report['config']['threads']} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _load_average() -> list[float] | None:
    """The machine's 1/5/15-minute load: other work on a shared machine skews wall times."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


if __name__ == "__main__":
    main()
