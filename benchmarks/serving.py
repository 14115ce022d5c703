"""Serving overhead: the offline workload over HTTP, and classification latency under decode load.

    python -m benchmarks.serving --json artifacts/serving.json [--quick] [--device cuda]
        [--dtype auto] [--workload long-prompt]

1. Throughput. The offline benchmark's seeded workload (64 requests to a random model of
   google/flan-t5-small's shape, inputs of 40-56 tokens, outputs of exactly 16-128 tokens) runs
   three ways in one run: the bare scheduler+runner loop (benchmarks.offline_systems, no
   server), takeoff's asyncio Engine in-process (worker thread, no HTTP), and `takeoff serve`
   in a subprocess with all requests sent at once as concurrent /generate_stream SSE streams.
   --workload long-prompt runs issue 16's workload instead (48 requests of ~100-token English
   prompts to a random model of flan-t5-small's width, benchmarks/offline_workloads.py).
   Hugging Face generate on static batches runs the same requests in the same run, on the same
   kind of worker thread, in the server's dtype and in float32: the ratios the server is judged by.
   Every stream's largest gap between two tokens is kept: with all requests sent at once, the gap
   a stream sees while the others' prompts are prefilled.
2. Classification latency. Sequential /classify calls (one sentence each, the demo classifier in
   models/feedback-classifier, or --classifier DIR) on the idle server, then while 32 streams
   decode: paced at --classify-rate (10/s), then back to back. The streams restart as they
   finish, so prompts are prefilled throughout: their largest inter-token gap is the stall a
   prefill causes a running stream. The streams' tokens/s during each set of calls, over their
   tokens/s just before with no calls, is what classification costs generation.

Prints a table; writes JSON, and a PNG chart next to it when matplotlib is installed. On a
shared or small CPU set OMP_NUM_THREADS (e.g. 1) for the whole run: the server subprocess inherits
it, and oversubscribed OpenMP threads otherwise swamp every figure with noise.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.models import DEMO_CLASSIFIER, FLAN_T5_SMALL, save_random_classifier, save_readable_t5
from benchmarks.offline_systems import make_requests, run_engine
from benchmarks.report import pyplot, save_report
from benchmarks.servers import ServerProcess, free_port, takeoff_command

SENTENCE = "The onboarding guide is confusing. Maybe split it into shorter steps next time."


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, classifier_dir, requests, prompts = prepare_workload(args, Path(tmp))
        num_requests = len(requests)
        args.max_input_len = max(64, -(-max(len(r.prompt_ids) for r in requests) // 16) * 16)
        bare = measure_bare_loop(args, model_dir, requests)
        hf_static = measure_hf_static(args, model_dir, requests)
        in_process = asyncio.run(measure_engine(args, model_dir, requests, prompts))
        with start_server(args, model_dir, classifier_dir, Path(tmp)) as server:
            http = asyncio.run(measure_http(server.url, requests, prompts))
            classify = asyncio.run(measure_classify(server.url, args, requests, prompts))
        on_ray = {}
        if args.replicas > 1:
            from benchmarks.serving_replicas import measure_replicas
            on_ray = measure_replicas(args, model_dir, classifier_dir, Path(tmp), requests,
                                      prompts)
        on_triton = {}
        if args.triton_rounds:
            from benchmarks.serving_triton import measure_triton
            on_triton = measure_triton(args, model_dir, Path(tmp), requests, prompts)
    report = {"machine": platform.platform(), "device": args.device, "dtype": args.dtype,
              "workload": args.workload,
              "torch_threads": torch_threads(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "num_requests": num_requests,
              "num_tokens": sum(r.num_tokens for r in requests),
              "throughput": {**hf_static, "bare_loop": bare, "engine_in_process": in_process,
                             "http": http, **on_ray, **on_triton},
              "http_vs_bare_loop": http["tokens_per_s"] / bare["tokens_per_s"],
              "http_vs_engine_in_process": http["tokens_per_s"] / in_process["tokens_per_s"],
              "http_vs_best_hf_static": hf_ratios(http, hf_static),
              "classify": classify}
    print_table(report)
    if on_ray:
        from benchmarks.serving_replicas import print_ratios
        print_ratios(report, args.replicas)
    if on_triton:
        from benchmarks.serving_triton import print_triton, triton_ratio
        report["triton_vs_serve"] = triton_ratio(on_triton)
        print_triton(on_triton)
    if args.json:
        save_report(report, args.json, plot)
    return report


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results here (and a .png chart next to it)")
    parser.add_argument("--num-requests", type=int, help="default: the workload's, 64 or 48 (8 with --quick)")
    parser.add_argument("--workload", default="flan-t5-small", choices=["flan-t5-small", "long-prompt"],
                        help="long-prompt: issue 16's model with ~100-token prompts of English "
                             "words (benchmarks/offline_workloads.py)")
    parser.add_argument("--dtype", default="auto", help="the server's --dtype (default: auto); "
                        "Hugging Face runs in the dtype it resolves to, and in float32")
    parser.add_argument("--hf-batch-sizes", default=None,
                        help="static batch sizes for Hugging Face generate (default: the workload's,"
                             " 16 and the number of requests)")
    parser.add_argument("--skip-hf", action="store_true", help="leave out Hugging Face generate")
    parser.add_argument("--classifier", default=None,
                        help="classifier directory for the latency test (default: the demo model in "
                             "models/feedback-classifier; a random ELECTRA-small when it is absent)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few, short requests")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--streams", type=int, default=32, help="decoding streams while "
                        "classification latency is measured (default 32)")
    parser.add_argument("--classify-requests", type=int, default=100)
    parser.add_argument("--classify-rate", type=float, default=10.0,
                        help="calls per second of the paced classification test (default 10); "
                             "a back-to-back test follows it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replicas", type=int, default=1, help="N > 1: also run the throughput "
                        "workload on Ray Serve, 1 replica then N (needs the [ray] extra)")
    parser.add_argument("--triton", dest="triton_rounds", type=int, nargs="?", const=2, default=0,
                        metavar="ROUNDS", help="also run the throughput workload through `takeoff "
                        "triton` (gRPC streams) and `takeoff serve` (SSE), alternating, ROUNDS "
                        "times (default 2; needs the [triton] extra)")
    return parser.parse_args(argv)


def prepare_workload(args, tmp: Path):
    """(generator dir, classifier dir, requests, their prompts as text)."""
    if args.workload == "long-prompt":
        from benchmarks.offline_workloads import long_prompt

        workload = long_prompt(tmp, args.seed, args.num_requests, args.quick)
        args.batch_sizes = workload.batch_sizes
        return workload.model_dir, classifier(args, tmp), workload.requests, workload.texts
    model_dir = save_readable_t5(tmp / "generator", seed=args.seed)
    requests = make_requests(args.num_requests or (8 if args.quick else 64), FLAN_T5_SMALL["vocab_size"],
                             seed=args.seed, output_lens=(16, 32) if args.quick else (16, 128))
    args.batch_sizes = tuple(sorted({min(16, len(requests)), len(requests)}))
    return model_dir, classifier(args, tmp), requests, prompt_texts(model_dir, requests)


def classifier(args, tmp: Path) -> Path:
    """--classifier, else the demo classifier, else a random ELECTRA-small of its shape."""
    if args.classifier:
        return Path(args.classifier)
    if (DEMO_CLASSIFIER / "config.json").is_file():
        return DEMO_CLASSIFIER
    return save_random_classifier(tmp / "classifier", seed=args.seed)


def prompt_texts(model_dir: Path, requests) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = [" ".join(tokenizer.convert_ids_to_tokens(r.prompt_ids[:-1])) for r in requests]
    for text, request in zip(texts, requests):  # the server must see the very same ids
        assert tokenizer(text)["input_ids"] == request.prompt_ids
    return texts


def measure_bare_loop(args, model_dir: Path, requests) -> dict:
    """On one worker thread, as in the server: on a busy CPU, torch's thread pool behaves very
    differently when called from the main thread, which would skew the comparison."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(_bare_loop, args, model_dir, requests).result()


def _bare_loop(args, model_dir: Path, requests) -> dict:
    from kernels.loader import load_generator
    from kernels.runner import ModelRunner
    from takeoff.config import ServerConfig

    # The server's slots and per-step token budget, so that only the serving around it differs.
    num_slots, budget = server_slots(args), ServerConfig.max_num_batched_tokens
    generator = load_generator(model_dir, device=args.device, dtype=args.dtype)
    runner = ModelRunner(generator, max_num_seqs=num_slots, max_len=128, max_input_len=args.max_input_len)
    run_engine(runner, generator.tokenizer, generator.eos_token_id, requests[:2], num_slots, budget)
    result = run_engine(runner, generator.tokenizer, generator.eos_token_id, requests,
                        num_slots, budget, name="bare loop")
    return {"tokens": result.num_tokens, "seconds": result.total_s,
            "tokens_per_s": result.tokens_per_s}


def measure_hf_static(args, model_dir: Path, requests) -> dict:
    """Hugging Face generate on static batches of each size, in the server's dtype and in float32,
    on one worker thread like the other systems."""
    if args.skip_hf:
        return {}
    import torch

    from kernels.devices import resolve_dtype

    resolved, _ = resolve_dtype(torch.device(args.device), args.dtype)
    dtype = str(resolved).removeprefix("torch.")
    sizes = args.batch_sizes
    if args.hf_batch_sizes:
        sizes = tuple(int(s) for s in args.hf_batch_sizes.split(","))
    rows = {}
    with ThreadPoolExecutor(max_workers=1) as executor:
        for name in dict.fromkeys([dtype, "float32"]):
            rows.update(executor.submit(_hf_static, args, model_dir, requests, name, sizes).result())
    return rows


def _hf_static(args, model_dir: Path, requests, dtype: str, sizes) -> dict:
    from benchmarks.offline_systems import load_hf, run_hf

    model = load_hf(model_dir, dtype, args.device, requests)
    rows = {}
    for size in sizes:
        result = run_hf(model, requests, size, f"hf static {size} {dtype}")
        tokens = sum(len(o) for o in result.outputs)
        rows[f"hf_static_{size}_{dtype}"] = {"tokens": tokens, "seconds": result.total_s,
                                             "tokens_per_s": tokens / result.total_s,
                                             "dtype": dtype, "batch_size": size}
    return rows


def hf_ratios(http: dict, hf_static: dict) -> dict:
    """HTTP tokens/s over the best Hugging Face static row of each dtype."""
    best: dict[str, float] = {}
    for row in hf_static.values():
        best[row["dtype"]] = max(best.get(row["dtype"], 0.0), row["tokens_per_s"])
    return {dtype: http["tokens_per_s"] / value for dtype, value in best.items()}


async def measure_engine(args, model_dir: Path, requests, prompts: list[str]) -> dict:
    from scheduler.request import Task
    from scheduler.sampling_params import SamplingRequest
    from takeoff.app import build_runner, build_runners
    from takeoff.engine.engine import Engine
    from takeoff.engine.readers import load_readers

    async def generate(prompt: str, request):
        sampling = SamplingRequest.fixed(request.sampling)
        async with engine.submit(Task.GENERATE, [prompt], sampling=sampling) as work:
            return (await work.results())[0]

    config = server_config(args, model_dir, None, server_slots(args))
    readers = load_readers(config)
    engine = Engine(config, readers, build_runners(config, readers, build_runner))
    engine.start()
    try:
        await generate(prompts[0], requests[0])  # warm-up
        start = time.perf_counter()
        results = await asyncio.gather(*(generate(p, r) for p, r in zip(prompts, requests)))
        seconds = time.perf_counter() - start
    finally:
        await engine.stop()
    tokens = sum(r.generated_tokens for r in results)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def server_slots(args) -> int:
    """KV slots of the server (and of the loops it is compared with): room for every stream."""
    return max(64, args.streams)


def server_config(args, model_dir, classifier_dir, num_slots: int):
    from takeoff.config import ServerConfig

    return ServerConfig(model=str(model_dir), classifier=str(classifier_dir or "") or None,
                        device=args.device, dtype=args.dtype, max_num_seqs=num_slots, max_new_tokens=128,
                        max_input_len=args.max_input_len, max_queue=1024, log_level="warning")


async def stream_once(http, url: str, prompt: str, num_tokens: int, on_text=None) -> dict:
    """One /generate_stream call read to its end; returns its metadata event, with
    "max_gap_s": the largest wait between two pieces of text after the first, and "ttft_s":
    from sending to the first piece (on_text() is called for each piece)."""
    from clients.sse import SSEDecoder

    body = {"text": prompt, "max_new_tokens": num_tokens, "min_new_tokens": num_tokens}
    decoder, events = SSEDecoder(), []
    last, first, max_gap, pieces, start = None, None, 0.0, 0, time.perf_counter()
    async with http.post(url + "/generate_stream", json=body) as response:
        response.raise_for_status()
        async for chunk in response.content.iter_any():
            new = decoder.feed(chunk)
            if any(e.event in ("", "message") for e in new):
                now = time.perf_counter()
                if last is not None:
                    max_gap = max(max_gap, now - last)
                first = first or now
                last = now
                pieces += 1
                if on_text is not None:
                    on_text(sum(e.event in ("", "message") for e in new))
            events += new
    metadata = json.loads(next(e for e in events if e.event == "metadata").data)
    metadata["max_gap_s"], metadata["text_events"] = max_gap, pieces
    metadata["ttft_s"] = (first or time.perf_counter()) - start
    return metadata


async def measure_http(url: str, requests, prompts: list[str]) -> dict:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        await stream_once(http, url, prompts[0], requests[0].num_tokens)  # warm-up
        start = time.perf_counter()
        results = await asyncio.gather(*(stream_once(http, url, p, r.num_tokens)
                                         for p, r in zip(prompts, requests)))
        seconds = time.perf_counter() - start
    tokens = sum(m["generated_tokens"] for m in results)
    gaps = np.array([m["max_gap_s"] for m in results]) * 1000
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "concurrent_streams": len(requests), "max_inter_token_gap_ms": float(gaps.max()),
            "p50_stream_max_gap_ms": float(np.percentile(gaps, 50)),
            **ttft_percentiles([m["ttft_s"] for m in results]),
            "text_events_per_token": sum(m["text_events"] for m in results) / tokens}


def ttft_percentiles(ttfts: list[float]) -> dict:
    ms = np.array(ttfts) * 1000
    return {"ttft_p50_ms": float(np.percentile(ms, 50)), "ttft_p99_ms": float(np.percentile(ms, 99))}


async def classify_latencies(http, url: str, count: int, rate: float | None = None) -> list[float]:
    """`count` sequential /classify calls: back to back, or one every 1/rate seconds."""
    latencies = []
    start = time.perf_counter()
    for i in range(count):
        if rate:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        began = time.perf_counter()
        async with http.post(url + "/classify", json={"text": SENTENCE}) as response:
            response.raise_for_status()
            await response.read()
        latencies.append(time.perf_counter() - began)
    return latencies


async def measure_classify(url: str, args, requests, prompts: list[str]) -> dict:
    """Idle latencies; then, with `args.streams` streams decoding, the streams' tokens/s on
    their own, and latencies and tokens/s with calls paced at --classify-rate and back to back.
    Back to back, the client sends as fast as the server answers, so the faster it answers,
    the more of the device classification takes: a stress figure, not a load a user sends."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await classify_latencies(http, url, 5)  # warm-up
        idle = await classify_latencies(http, url, args.classify_requests)
        stop = asyncio.Event()
        counted = [0]
        gaps: list[float] = []

        def count(pieces: int) -> None:
            counted[0] += pieces

        async def keep_streaming(i: int) -> None:
            # Lengths vary so that streams finish, and prompts are prefilled, all the time.
            n = 0
            while not stop.is_set():
                length = 32 + (i * 37 + n * 53) % 97
                metadata = await stream_once(http, url, prompts[(i + n) % len(prompts)], length,
                                             on_text=count)
                gaps.append(metadata["max_gap_s"])
                n += 1

        async def tokens_per_s(work) -> tuple[float, object]:
            counted[0], start = 0, time.perf_counter()
            result = await work
            return counted[0] / (time.perf_counter() - start), result

        streams = [asyncio.create_task(keep_streaming(i)) for i in range(args.streams)]
        await wait_for_slots(http, url, args.streams)
        await asyncio.sleep(2.0)  # every stream past its first prefill
        alone, _ = await tokens_per_s(asyncio.sleep(5.0))
        paced_rate, paced = await tokens_per_s(
            classify_latencies(http, url, args.classify_requests, args.classify_rate))
        busy_rate, busy = await tokens_per_s(classify_latencies(http, url, args.classify_requests))
        stop.set()
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    paced_name = f"paced_{args.classify_rate:g}_per_s_{args.streams}_streams"
    busy_name = f"back_to_back_{args.streams}_streams"
    summary = {"idle": percentiles(idle), paced_name: percentiles(paced),
               busy_name: percentiles(busy)}
    summary["p99_ratio"] = summary[paced_name]["p99_ms"] / summary["idle"]["p99_ms"]
    summary["p99_ratio_back_to_back"] = summary[busy_name]["p99_ms"] / summary["idle"]["p99_ms"]
    summary["stream_tokens_per_s"] = {
        "alone": alone, "paced": paced_rate, "back_to_back": busy_rate,
        "paced_ratio": paced_rate / alone if alone else None,
        "back_to_back_ratio": busy_rate / alone if alone else None}
    summary["streams_max_inter_token_gap_ms"] = 1000 * max(gaps) if gaps else None
    summary["streams_completed"] = len(gaps)
    return summary


async def wait_for_slots(http, url: str, num_slots: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with http.get(url + "/metrics") as response:
            text = await response.text()
        line = next(l for l in text.splitlines() if l.startswith("takeoff_kv_slots_in_use "))
        if float(line.split()[1]) >= num_slots:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the server never had {num_slots} streams decoding")


def percentiles(latencies: list[float]) -> dict:
    ms = np.array(latencies) * 1000
    return {"count": len(ms), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def start_server(args, model_dir: Path, classifier_dir: Path, tmp: Path,
                 extra_flags: list[str] = ()) -> ServerProcess:
    """`takeoff serve` in a subprocess (so the client does not share its interpreter)."""
    port = free_port()
    command = takeoff_command(port, model_dir, classifier_dir, "--device", args.device,
                              "--dtype", args.dtype, "--max-num-seqs", str(server_slots(args)),
                              "--max-new-tokens", "128", "--max-input-len", str(args.max_input_len),
                              "--max-queue", "1024", "--log-level", "warning", *extra_flags)
    return ServerProcess(command, port, tmp / "server.log")


def print_table(report: dict) -> None:
    print(f"\n{report['num_requests']} requests, {report['num_tokens']} tokens, "
          f"device {report['device']}")
    print(f"{'system':<28}{'tokens':>8}{'seconds':>10}{'tokens/s':>11}")
    for name, row in report["throughput"].items():
        print(f"{name:<28}{row['tokens']:>8}{row['seconds']:>10.2f}{row['tokens_per_s']:>11.1f}")
    print(f"HTTP / bare loop: {report['http_vs_bare_loop']:.1%}   "
          f"HTTP / in-process Engine: {report['http_vs_engine_in_process']:.1%}")
    for dtype, ratio in report["http_vs_best_hf_static"].items():
        print(f"HTTP / best Hugging Face static {dtype}: {ratio:.2f}x")
    http = report["throughput"]["http"]
    print(f"largest gap between two tokens of a stream: {http['max_inter_token_gap_ms']:.0f} ms")
    print(f"\n{'/classify latency':<28}{'p50 ms':>10}{'p99 ms':>10}")
    for name, row in report["classify"].items():
        if isinstance(row, dict) and "p50_ms" in row:
            print(f"{name:<28}{row['p50_ms']:>10.1f}{row['p99_ms']:>10.1f}")
    classify = report["classify"]
    print(f"p99 under load / idle: paced {classify['p99_ratio']:.2f}x, back to back "
          f"{classify['p99_ratio_back_to_back']:.2f}x")
    rates = classify["stream_tokens_per_s"]
    print(f"streams' tokens/s: alone {rates['alone']:.0f}, with paced calls {rates['paced']:.0f} "
          f"({rates['paced_ratio']:.1%}), with back-to-back calls {rates['back_to_back']:.0f} "
          f"({rates['back_to_back_ratio']:.1%})")
    print(f"largest inter-token gap of the restarting streams: "
          f"{classify['streams_max_inter_token_gap_ms']:.0f} ms "
          f"({classify['streams_completed']} streams completed)")


def plot(report: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = list(report["throughput"])
    left.bar(names, [report["throughput"][n]["tokens_per_s"] for n in names])
    left.tick_params(axis="x", labelrotation=30)
    for label in left.get_xticklabels():
        label.set_horizontalalignment("right")
    left.set_ylabel("tokens/s")
    left.set_title("offline workload")
    rows = {k: v for k, v in report["classify"].items() if isinstance(v, dict) and "p50_ms" in v}
    positions = np.arange(len(rows))
    right.bar(positions - 0.2, [v["p50_ms"] for v in rows.values()], 0.4, label="p50")
    right.bar(positions + 0.2, [v["p99_ms"] for v in rows.values()], 0.4, label="p99")
    right.set_xticks(positions, list(rows))
    right.set_ylabel("ms")
    right.set_title("/classify latency")
    right.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    main()
