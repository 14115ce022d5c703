"""`python -m benchmarks.serving --triton`: the throughput workload through `takeoff triton`.

The HTTP row of benchmarks.serving (the same seeded requests, all sent at once) is run against
`takeoff serve` (concurrent /generate_stream SSE streams) and `takeoff triton` (concurrent gRPC
streams to the decoupled `primary` model, one stream per request, tritonclient's asyncio client),
each in its own subprocess with the same model flags, alternating for --triton-rounds rounds: on a
shared machine figures drift within minutes. Each row has tokens/s, the time to first text piece
(TTFT, from sending the request) and the load average around it. Every request asks for exactly
its number of tokens (min_new_tokens = max_new_tokens), so Triton's rows count those.
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.servers import HOST, ServerProcess, free_port

START_TIMEOUT_S = 600


def measure_triton(args, model_dir: Path, tmp: Path, requests, prompts) -> dict:
    """Rows `serve_N` and `triton_N` for each round, then the ratio of their tokens/s."""
    from benchmarks.serving import measure_http, start_server

    rows: dict = {}
    for round_index in range(1, args.triton_rounds + 1):
        load = os.getloadavg()[0]
        with start_server(args, model_dir, None, tmp) as server:
            rows[f"serve_{round_index}"] = asyncio.run(measure_http(server.url, requests, prompts))
        rows[f"serve_{round_index}"]["load_average"] = [load, os.getloadavg()[0]]
        load = os.getloadavg()[0]
        with start_triton(args, model_dir, tmp) as server:
            rows[f"triton_{round_index}"] = asyncio.run(
                measure_grpc(server.grpc_url, requests, prompts))
        rows[f"triton_{round_index}"]["load_average"] = [load, os.getloadavg()[0]]
    return rows


def triton_ratio(rows: dict) -> float:
    """Triton's tokens/s over takeoff serve's, over all rounds (total tokens / total seconds)."""
    def rate(kind: str) -> float:
        chosen = [row for name, row in rows.items() if name.startswith(kind)]
        return sum(r["tokens"] for r in chosen) / sum(r["seconds"] for r in chosen)

    return rate("triton_") / rate("serve_")


def start_triton(args, model_dir: Path, tmp: Path) -> ServerProcess:
    http, grpc, metrics = free_port(), free_port(), free_port()
    command = [sys.executable, "-m", "takeoff.cli", "triton", "--model", str(model_dir),
               "--host", HOST, "--http-port", str(http), "--grpc-port", str(grpc),
               "--metrics-port", str(metrics), "--device", args.device, "--dtype", args.dtype,
               "--max-num-seqs", str(max(64, args.streams)), "--max-new-tokens", "128",
               "--max-input-len", str(args.max_input_len), "--max-queue", "1024",
               "--log-level", "warning"]
    # PyTriton's workspace (its Unix sockets too) in the benchmark's short-pathed scratch folder.
    server = ServerProcess(command, http, tmp / "triton.log", ready_path="/v2/health/ready",
                           env={"PYTRITON_HOME": str(tmp / "pytriton")},
                           start_timeout_s=START_TIMEOUT_S)
    server.grpc_url = f"{HOST}:{grpc}"
    return server


async def measure_grpc(grpc_url: str, requests, prompts: list[str]) -> dict:
    from tritonclient.grpc.aio import InferenceServerClient

    from benchmarks.serving import ttft_percentiles

    client = InferenceServerClient(grpc_url)
    try:
        await grpc_stream_once(client, prompts[0], requests[0].num_tokens)  # warm-up
        start = time.perf_counter()
        results = await asyncio.gather(*(grpc_stream_once(client, p, r.num_tokens)
                                         for p, r in zip(prompts, requests)))
        seconds = time.perf_counter() - start
    finally:
        await client.close()
    tokens = sum(r.num_tokens for r in requests)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "concurrent_streams": len(requests), **ttft_percentiles([r["ttft_s"] for r in results]),
            "text_events_per_token": sum(r["text_events"] for r in results) / tokens}


async def grpc_stream_once(client, prompt: str, num_tokens: int) -> dict:
    """One generation on its own gRPC stream. The request side closes after the one request
    (tritonclient's asyncio client cannot ask for the empty final response); Triton ends the
    stream once that request's last response is out."""
    from tritonclient.grpc import InferInput

    text = InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(np.array([prompt.encode()], dtype=np.object_))

    async def one_request():
        yield {"model_name": "primary", "inputs": [text],
               "parameters": {"max_new_tokens": num_tokens, "min_new_tokens": num_tokens}}

    start, first, pieces = time.perf_counter(), None, 0
    async for result, error in client.stream_infer(one_request()):
        if error is not None:
            raise error
        if result.as_numpy("text") is not None:
            first = first or time.perf_counter()
            pieces += 1
    return {"ttft_s": (first or time.perf_counter()) - start, "text_events": pieces}


def print_triton(rows: dict) -> None:
    print(f"\n{'takeoff serve vs triton':<28}{'tokens/s':>10}{'TTFT p50 ms':>13}"
          f"{'TTFT p99 ms':>13}{'load avg':>14}")
    for name, row in rows.items():
        if name.startswith(("serve_", "triton_")):
            print(f"{name:<28}{row['tokens_per_s']:>10.1f}{row['ttft_p50_ms']:>13.0f}"
                  f"{row['ttft_p99_ms']:>13.0f}{'%.1f-%.1f' % tuple(row['load_average']):>14}")
    print(f"Triton / takeoff serve tokens/s: {triton_ratio(rows):.1%}")
