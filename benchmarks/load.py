"""Serving under load: takeoff against the servers a user would otherwise run, with plots.

    python -m benchmarks.load --json benchmarks/results/load.json        # also: takeoff bench
    python -m benchmarks.load --quick --json artifacts/load-quick.json   # < 5 min on 2 cores
    python -m benchmarks.load --url http://127.0.0.1:3000 --rates 1,2 --workload classification

Each system is started in turn as a server on 127.0.0.1 (takeoff serve, and the baselines in
benchmarks/baselines/: Hugging Face generate and CTranslate2 behind a small dynamic-batching
Starlette server), loads the same model, and gets the same seeded calls: at Poisson arrivals of
each --rates value (open loop), or from each --concurrency number of clients (closed loop).
takeoff streams (/generate_stream), so its TTFT and ITL are measured; the baselines answer whole,
so their TTFT is their end-to-end latency. Every load point is bounded in calls and seconds.

Writes JSON (--json), a markdown table (.md) and a PNG (.png) next to it. Goodput: the highest
load at which TTFT p99 <= --slo-ttft-ms and no call failed (429s included).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from tqdm import tqdm

from benchmarks import workloads
from benchmarks.load_report import clients, markdown, plot
from benchmarks.load_stats import goodput, summarize, ttft_p99_ratios
from benchmarks.load_systems import SERVING, Models, Target, prepare_models, system_under_test
from benchmarks.loadgen import CUT_OFF, Outcome, closed_loop, open_loop, send
from benchmarks.report import save_report
from benchmarks.servers import stopping_servers_on_interrupt

# On a busy machine a server whose OpenMP threads outnumber the free cores waits at every op's
# barrier: Hugging Face's many small ops ran 10x slower with 2 threads than with 1 on 2 loaded cores.
DEFAULT_THREADS = max(1, (os.cpu_count() or 2) - 1)
QUICK = dict(rates="1,2,4", num_requests=12, output_lens="16,32", max_seconds=40.0, warmup=2)
FULL = dict(rates="0.5,1,2,4", num_requests=40, output_lens="16,128", max_seconds=180.0, warmup=4)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started, load_before = time.monotonic(), os.getloadavg()
    points = []
    with (stopping_servers_on_interrupt(),
          tempfile.TemporaryDirectory(prefix="takeoff-load-") as tmp):
        models = (Models(None, None, f"the server at {args.url}") if args.url else
                  prepare_models(args.workload, Path(tmp), args.model, args.classifier, args.seed))
        calls = workload_calls(args, models)
        for system in args.systems:
            with system_under_test(system, models, Path(tmp), args) as target:
                points += asyncio.run(measure_system(target, calls, args))
    report = build_report(args, models, points, time.monotonic() - started, load_before)
    print(markdown(report))
    if args.json:
        save_report(report, args.json, plot)
        Path(args.json).with_suffix(".md").write_text(markdown(report))
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--json", help="write the report here, with .md and .png beside it")
    add("--quick", action="store_true", help="3 rates, 12 short calls each: under 5 minutes")
    add("--workload", choices=workloads.KINDS, default="generation")
    add("--csv", help="generation calls from this CSV (text[,max_new_tokens,min_new_tokens])")
    add("--rates", help=f"open loop: requests/s, comma-separated (default {FULL['rates']}; "
                        f"--quick {QUICK['rates']})")
    add("--concurrency", help="closed loop instead: numbers of clients, comma-separated")
    add("--num-requests", type=int, help=f"calls per load point (default {FULL['num_requests']})")
    add("--max-seconds", type=float, help="time limit of one load point; calls still running "
                                          f"then count as errors (default {FULL['max_seconds']:g})")
    add("--systems", help="comma-separated (default: every system that serves the workload)")
    add("--url", help="drive the Takeoff-API server at this URL instead of starting servers")
    add("--server-pid", type=int, help="with --url: the server's process id, for its memory")
    add("--model", help="generator directory (default: a random T5 of flan-t5-small's shape)")
    add("--classifier", help="classifier directory (default: models/feedback-classifier)")
    add("--input-lens", default="40,56", help="generation: input tokens, min,max")
    add("--output-lens", help=f"generation: output tokens, min,max (default {FULL['output_lens']})")
    add("--threads", type=int, default=DEFAULT_THREADS,
        help=f"compute threads of each server (default {DEFAULT_THREADS}: one core is left to "
             "the load generator)")
    add("--device", default="cpu")
    add("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    add("--max-num-seqs", type=int, default=64, help="takeoff's KV slots")
    add("--max-batch-size", type=int, default=32, help="baselines: largest batch")
    add("--max-wait-ms", type=float, default=10.0, help="baselines: how long a batch collects")
    add("--warmup", type=int, help="calls sent to each server before measuring")
    add("--slo-ttft-ms", type=float, default=1000.0)
    add("--slo-e2e-ms", type=float, default=10000.0)
    add("--seed", type=int, default=0)
    return _with_defaults(parser, parser.parse_args(argv))


def _with_defaults(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None and not (name == "rates" and args.concurrency):
            setattr(args, name, value)
    args.rate_list = [float(r) for r in args.rates.split(",")] if args.rates else []
    args.concurrency_list = [int(c) for c in args.concurrency.split(",")] if args.concurrency else []
    if any(r <= 0 for r in args.rate_list) or any(c < 1 for c in args.concurrency_list):
        parser.error("rates must be positive and concurrency at least 1")
    args.input_lens = _pair(parser, "--input-lens", args.input_lens)
    args.output_lens = _pair(parser, "--output-lens", args.output_lens)
    serving = SERVING[args.workload]
    default = ("takeoff",) if args.url else serving
    args.systems = args.systems.split(",") if args.systems else list(default)
    unknown = [s for s in args.systems if s not in serving and not args.url]
    if unknown:
        parser.error(f"{', '.join(unknown)} cannot serve the {args.workload} workload "
                     f"(choose from {', '.join(serving)})")
    return args


def _pair(parser, flag: str, text: str) -> tuple[int, int]:
    low, _, high = text.partition(",")
    try:
        pair = (int(low), int(high or low))
    except ValueError:
        parser.error(f"{flag} takes min,max")
    if not 1 <= pair[0] <= pair[1]:
        parser.error(f"{flag}: need 1 <= min <= max")
    return pair


def workload_calls(args, models: Models) -> list[workloads.Call]:
    count = args.num_requests + args.warmup
    if args.workload == "classification":
        return workloads.classification_calls(count, args.seed)
    if args.workload == "feedback":
        return workloads.feedback_calls(count, args.seed)
    if args.csv:
        return workloads.csv_calls(Path(args.csv), count, args.seed)
    return workloads.generation_calls(count, args.seed, args.input_lens, args.output_lens)


async def measure_system(target: Target, calls: list[workloads.Call], args) -> list[dict]:
    """Warm-up calls (not counted), then every load point in turn."""
    warmup, measured = calls[:args.warmup], calls[args.warmup:]
    async with _session(args.max_seconds) as http:
        for _ in range(2):  # a fresh server's first batch is slow (allocations, lazy set-up)
            await asyncio.gather(*(send(http, target.url, c, target.streams) for c in warmup))
    points = []
    loads = [(rate, None) for rate in args.rate_list] + [(None, c) for c in args.concurrency_list]
    for index, (rate, concurrency) in enumerate(loads):
        outcomes, seconds = await measure_point(target, measured, rate, concurrency, args,
                                                seed=args.seed + index)
        streamed = target.streams and args.workload in workloads.STREAMED
        points.append(summarize(target.name, rate, concurrency, outcomes, seconds, streamed,
                                target.peak_rss_mb()))
        if any(o.error == CUT_OFF for o in outcomes) and warmup:
            await _settle(target, warmup[0], args)
    return points


async def measure_point(target: Target, calls: list[workloads.Call], rate: float | None,
                        concurrency: int | None, args, seed: int) -> tuple[list[Outcome], float]:
    label = f"{rate:g} req/s" if rate is not None else clients(concurrency)
    loop = asyncio.get_running_loop()
    with tqdm(total=len(calls), desc=f"{target.name} @ {label}", unit="call",
              file=sys.stderr, dynamic_ncols=True) as bar:
        async with _session(args.max_seconds) as http:
            def send_one(i: int):
                return send(http, target.url, calls[i], target.streams)
            start = loop.time()
            deadline = start + args.max_seconds
            if rate is not None:
                outcomes = await open_loop(send_one, len(calls), rate, seed, deadline,
                                           lambda: bar.update(1))
            else:
                outcomes = await closed_loop(send_one, len(calls), concurrency, deadline,
                                             lambda: bar.update(1))
            return outcomes, loop.time() - start


async def _settle(target: Target, call: workloads.Call, args) -> None:
    """After a point was cut off: a server that cannot abort (the baselines finish the batch
    they run) is still busy; one call answered means it has caught up."""
    async with _session(args.max_seconds) as http:
        await send(http, target.url, call, target.streams)


def _session(timeout_s: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                 timeout=aiohttp.ClientTimeout(total=timeout_s + 30))


def build_report(args, models: Models, points: list[dict], seconds: float,
                 load_before: tuple[float, ...]) -> dict:
    config = {
        "workload": args.workload, "quick": args.quick, "model": models.generator_note,
        "classifier": str(models.classifier) if models.classifier else None,
        "csv": args.csv, "num_requests": args.num_requests, "warmup": args.warmup,
        "rates": args.rate_list or None, "concurrency": args.concurrency_list or None,
        "input_lens": list(args.input_lens), "output_lens": list(args.output_lens),
        "max_seconds_per_point": args.max_seconds, "threads": args.threads,
        "device": args.device, "dtype": args.dtype, "takeoff_max_num_seqs": args.max_num_seqs,
        "baseline_max_batch_size": args.max_batch_size, "baseline_max_wait_ms": args.max_wait_ms,
        "slo_ttft_ms": args.slo_ttft_ms, "slo_e2e_ms": args.slo_e2e_ms, "seed": args.seed,
        "url": args.url, "machine": platform.platform(), "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(seconds, 1), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return {"config": config, "systems": points,
            "goodput_rps": goodput(points, "ttft_ms", args.slo_ttft_ms),
            "goodput_e2e_rps": goodput(points, "e2e_ms", args.slo_e2e_ms),
            "takeoff_ttft_p99_ratio": ttft_p99_ratios(points)}


if __name__ == "__main__":
    main()
