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
2. Classification latency. Sequential /classify calls (one sentence each, a random
   ELECTRA-small-shaped classifier) on the idle server, then again while 32 streams decode.

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

from benchmarks.models import FLAN_T5_SMALL, save_random_classifier, save_readable_t5
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
        in_process = asyncio.run(measure_engine(args, model_dir, requests, prompts))
        with start_server(args, model_dir, classifier_dir, Path(tmp)) as server:
            http = asyncio.run(measure_http(server.url, requests, prompts))
            classify = asyncio.run(measure_classify(server.url, args, requests, prompts))
        on_ray = {}
        if args.replicas > 1:
            from benchmarks.serving_replicas import measure_replicas
            on_ray = measure_replicas(args, model_dir, classifier_dir, Path(tmp), requests,
                                      prompts)
    report = {"machine": platform.platform(), "device": args.device, "dtype": args.dtype,
              "workload": args.workload,
              "torch_threads": torch_threads(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "num_requests": num_requests,
              "num_tokens": sum(r.num_tokens for r in requests),
              "throughput": {"bare_loop": bare, "engine_in_process": in_process, "http": http,
                             **on_ray},
              "http_vs_bare_loop": http["tokens_per_s"] / bare["tokens_per_s"],
              "http_vs_engine_in_process": http["tokens_per_s"] / in_process["tokens_per_s"],
              "classify": classify}
    print_table(report)
    if on_ray:
        from benchmarks.serving_replicas import print_ratios
        print_ratios(report, args.replicas)
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
    parser.add_argument("--dtype", default="auto", help="the server's --dtype (default: auto)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few, short requests")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--streams", type=int, default=32, help="decoding streams while "
                        "classification latency is measured (default 32)")
    parser.add_argument("--classify-requests", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replicas", type=int, default=1, help="N > 1: also run the throughput "
                        "workload on Ray Serve, 1 replica then N (needs the [ray] extra)")
    return parser.parse_args(argv)


def prepare_workload(args, tmp: Path):
    """(generator dir, classifier dir, requests, their prompts as text)."""
    if args.workload == "long-prompt":
        from benchmarks.offline_workloads import long_prompt

        workload = long_prompt(tmp, args.seed, args.num_requests, args.quick)
        classifier_dir = save_random_classifier(tmp / "classifier", seed=args.seed)
        return workload.model_dir, classifier_dir, workload.requests, workload.texts
    model_dir, classifier_dir = prepare_models(tmp, args.seed)
    requests = make_requests(args.num_requests or (8 if args.quick else 64), FLAN_T5_SMALL["vocab_size"],
                             seed=args.seed, output_lens=(16, 32) if args.quick else (16, 128))
    return model_dir, classifier_dir, requests, prompt_texts(model_dir, requests)


def prepare_models(tmp: Path, seed: int) -> tuple[Path, Path]:
    """The offline benchmark's random flan-t5-small, with a tokenizer that reads its own token
    names back ("t17 t4005" -> [17, 4005, EOS]), and a random ELECTRA-small classifier."""
    return (save_readable_t5(tmp / "generator", seed=seed),
            save_random_classifier(tmp / "classifier", seed=seed))


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

    generator = load_generator(model_dir, device=args.device, dtype=args.dtype)
    runner = ModelRunner(generator, max_num_seqs=len(requests), max_len=128, max_input_len=args.max_input_len)
    run_engine(runner, generator.tokenizer, generator.eos_token_id, requests[:2], len(requests))
    result = run_engine(runner, generator.tokenizer, generator.eos_token_id, requests,
                        len(requests), name="bare loop")
    return {"tokens": result.num_tokens, "seconds": result.total_s,
            "tokens_per_s": result.tokens_per_s}


async def measure_engine(args, model_dir: Path, requests, prompts: list[str]) -> dict:
    from takeoff.app import build_runner, build_runners
    from takeoff.engine import Engine
    from takeoff.readers import load_readers

    config = server_config(args, model_dir, None, len(requests))
    readers = load_readers(config)
    engine = Engine(config, readers, build_runners(config, readers, build_runner))
    engine.start()
    try:
        await engine.generate(prompts[0], requests[0].sampling)  # warm-up
        start = time.perf_counter()
        results = await asyncio.gather(*(engine.generate(p, r.sampling)
                                         for p, r in zip(prompts, requests)))
        seconds = time.perf_counter() - start
    finally:
        await engine.stop()
    tokens = sum(r.generated_tokens for r in results)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def server_config(args, model_dir, classifier_dir, num_slots: int):
    from takeoff.config import ServerConfig

    return ServerConfig(model=str(model_dir), classifier=str(classifier_dir or "") or None,
                        device=args.device, dtype=args.dtype, max_num_seqs=num_slots, max_new_tokens=128,
                        max_input_len=args.max_input_len, max_queue=1024, log_level="warning")


async def stream_once(http, url: str, prompt: str, num_tokens: int) -> dict:
    """One /generate_stream call read to its end; returns its metadata event."""
    from clients.sse import SSEDecoder

    body = {"text": prompt, "max_new_tokens": num_tokens, "min_new_tokens": num_tokens}
    decoder, events = SSEDecoder(), []
    async with http.post(url + "/generate_stream", json=body) as response:
        response.raise_for_status()
        async for chunk in response.content.iter_any():
            events += decoder.feed(chunk)
    metadata = next(e for e in events if e.event == "metadata")
    return json.loads(metadata.data)


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
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "concurrent_streams": len(requests)}


async def classify_latencies(http, url: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        async with http.post(url + "/classify", json={"text": SENTENCE}) as response:
            response.raise_for_status()
            await response.read()
        latencies.append(time.perf_counter() - start)
    return latencies


async def measure_classify(url: str, args, requests, prompts: list[str]) -> dict:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await classify_latencies(http, url, 5)  # warm-up
        idle = await classify_latencies(http, url, args.classify_requests)
        stop = asyncio.Event()

        async def keep_streaming(i: int) -> None:
            while not stop.is_set():
                await stream_once(http, url, prompts[i % len(prompts)], 128)

        streams = [asyncio.create_task(keep_streaming(i)) for i in range(args.streams)]
        await wait_for_slots(http, url, args.streams)
        busy = await classify_latencies(http, url, args.classify_requests)
        stop.set()
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    summary = {"idle": percentiles(idle), f"with_{args.streams}_streams": percentiles(busy)}
    summary["p99_ratio"] = summary[f"with_{args.streams}_streams"]["p99_ms"] / summary["idle"]["p99_ms"]
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
                              "--dtype", args.dtype, "--max-num-seqs", str(max(64, args.streams)),
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
    print(f"\n{'/classify latency':<28}{'p50 ms':>10}{'p99 ms':>10}")
    for name, row in report["classify"].items():
        if isinstance(row, dict):
            print(f"{name:<28}{row['p50_ms']:>10.1f}{row['p99_ms']:>10.1f}")
    print(f"p99 under load / idle: {report['classify']['p99_ratio']:.2f}x")


def plot(report: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = list(report["throughput"])
    left.bar(names, [report["throughput"][n]["tokens_per_s"] for n in names])
    left.set_ylabel("tokens/s")
    left.set_title("offline workload")
    rows = {k: v for k, v in report["classify"].items() if isinstance(v, dict)}
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
