"""The systems the load benchmark compares, each started as a server on 127.0.0.1 (or, with
--url, a server already running), and the models they all load."""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from benchmarks.models import DEMO_CLASSIFIER, DEMO_REWRITER, save_readable_t5
from benchmarks.servers import (ServerProcess, free_port, process_memory_mb, takeoff_command,
                                threads_env)

# system name -> whether it streams (its TTFT and ITL come from /generate_stream)
STREAMS = {"takeoff": True, "hf-dynamic-batching": False, "ctranslate2-dynamic-batching": False}
# the systems that serve each workload
SERVING = {"generation": ("takeoff", "hf-dynamic-batching", "ctranslate2-dynamic-batching"),
           "classification": ("takeoff", "hf-dynamic-batching"),
           "feedback": ("takeoff",)}
BASELINE_MODULES = {"hf-dynamic-batching": "benchmarks.baselines.hf",
                    "ctranslate2-dynamic-batching": "benchmarks.baselines.ct2"}


@dataclass(frozen=True)
class Models:
    generator: Path | None
    classifier: Path | None
    generator_note: str  # what the generator is, for the report


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    streams: bool
    peak_rss_mb: Callable[[], float | None]


def prepare_models(workload: str, tmp: Path, model: str | None, classifier: str | None,
                   seed: int) -> Models:
    """Generation: a random flan-t5-small-shaped T5 (or --model); classification: the demo
    classifier; the feedback mix: both demo models."""
    if workload == "classification":
        return Models(None, Path(classifier or DEMO_CLASSIFIER), "")
    if workload == "feedback":
        return Models(Path(model or DEMO_REWRITER), Path(classifier or DEMO_CLASSIFIER),
                      "the demo rewriter" if model is None else model)
    if model:
        return Models(Path(model), None, model)
    return Models(save_readable_t5(tmp / "generator", seed=seed), None,
                  f"random T5 of google/flan-t5-small's shape (seed {seed})")


def server_command(system: str, port: int, models: Models, args) -> list[str]:
    common = ["--device", args.device, "--dtype", args.dtype]
    if system == "takeoff":
        return takeoff_command(port, models.generator, models.classifier, *common,
                               "--max-num-seqs", str(args.max_num_seqs), "--log-level", "warning")
    command = [sys.executable, "-m", BASELINE_MODULES[system], "--port", str(port), *common,
               "--threads", str(args.threads), "--max-batch-size", str(args.max_batch_size),
               "--max-wait-ms", str(args.max_wait_ms)]
    if models.generator:
        command += ["--model", str(models.generator)]
    if models.classifier:
        command += ["--classifier", str(models.classifier)]
    return command


@contextlib.contextmanager
def system_under_test(system: str, models: Models, tmp: Path, args) -> Iterator[Target]:
    """A started server, stopped on leaving (also on an error or Ctrl-C); with --url, the
    server there (its memory read from --server-pid when given)."""
    if args.url:
        yield Target(system, args.url.rstrip("/"), STREAMS.get(system, True),
                     lambda: process_memory_mb(args.server_pid, "VmHWM"))
        return
    port = free_port()
    server = ServerProcess(server_command(system, port, models, args), port,
                           tmp / f"{system}.log", env=threads_env(args.threads))
    with server:
        yield Target(system, server.url, STREAMS[system], server.peak_rss_mb)
