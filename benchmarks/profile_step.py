"""Where one decode step's time goes, from torch.profiler's per-op times of real runner steps.

    python -m benchmarks.profile_step MODEL_DIR [--dtype bfloat16] [--batch 48] [--position 64]
        [--input-len 96] [--threads 2]

A runner holds `batch_size` sequences at decoder position `position` with `input_len` encoder
tokens; each of `repeats` decode steps is profiled. Ops are grouped into the step's parts; what
the ops leave of the profiled step's wall time is Python, dispatch (the runner's bookkeeping, the
sampling loop, building tensors) and the profiler's own cost per op, which makes profiled steps
slower: step_ms is the median step without the profiler.
"""
from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from kernels.linear import linear
from kernels.loader import load_generator
from kernels.runner import ModelRunner
from scheduler.output import PrefillInput, SchedulerOutput
from scheduler.sampling_params import SamplingParams

# aten op -> part of the step (ops not named here count as elementwise work)
PARTS = {"aten::mm": "linear layers", "aten::addmm": "linear layers", "aten::_int_mm": "linear layers",
         "mkldnn::_linear_pointwise": "linear layers",
         "aten::bmm": "attention over the cache (bmm, softmax)",
         "aten::_softmax": "attention over the cache (bmm, softmax)",
         "aten::copy_": "copies and dtype conversions", "aten::clone": "copies and dtype conversions",
         "aten::_to_copy": "copies and dtype conversions",
         "aten::_index_put_impl_": "cache writes and row indexing",
         "aten::index_select": "cache writes and row indexing",
         "aten::argmax": "choosing tokens", "aten::index_put_": "choosing tokens"}
ELEMENTWISE = "elementwise (norms, activation, residual adds, masks)"


def profile_decode_step(model_dir, device: str, dtype: str, batch_size: int, position: int,
                        input_len: int, repeats: int = 10) -> dict:
    quantize = "int8" if dtype == "int8" else "none"  # int8 linears, float32 between them
    generator = load_generator(model_dir, device=device, dtype="float32" if quantize == "int8" else dtype,
                               quantize=quantize)
    generator.weights.lm_head = _Labelled(generator.weights.lm_head, "lm_head")
    runner, slots = _running_batch(generator, batch_size, position, input_len, repeats)
    step = SchedulerOutput(decode_slots=slots)
    with torch.inference_mode():
        runner.execute(step)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            runner.execute(step)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                runner.execute(step)
        profiled_ms = (time.perf_counter() - start) * 1e3 / repeats
    ms_by_part: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.key == "lm_head":  # its matmul's time, moved out of the linear layers
            ms_by_part["lm_head"] += event.cpu_time_total / 1e3 / repeats
            ms_by_part["linear layers"] -= event.cpu_time_total / 1e3 / repeats
        else:
            ms_by_part[PARTS.get(event.key, ELEMENTWISE)] += event.self_cpu_time_total / 1e3 / repeats
    ms_by_part["Python, dispatch and the profiler's own cost"] = profiled_ms - sum(ms_by_part.values())
    return {"dtype": dtype, "batch_size": batch_size, "position": position, "input_len": input_len,
            "threads": torch.get_num_threads(), "step_ms": round(sorted(times)[repeats // 2] * 1e3, 2),
            "profiled_step_ms": round(profiled_ms, 2),
            "ms_by_part": {k: round(v, 2) for k, v in sorted(ms_by_part.items(), key=lambda kv: -kv[1])}}


class _Labelled:
    """A weight whose matmul shows in the profile under its own name."""

    def __init__(self, weight, name: str):
        self.weight, self.name = weight, name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with record_function(self.name):
            return linear(x, self.weight)


def _running_batch(generator, batch_size: int, position: int, input_len: int, repeats: int):
    """A runner whose slots 0..batch_size-1 are all at decoder position `position`."""
    max_len = position + 2 * repeats + 8  # warm-up, timed and profiled steps
    runner = ModelRunner(generator, max_num_seqs=batch_size, max_len=max_len, max_input_len=input_len)
    rng = random.Random(0)
    vocab = generator.vocab_size
    params = SamplingParams(max_new_tokens=max_len, min_new_tokens=max_len)
    prefill = [PrefillInput(str(i), i, [rng.randrange(3, vocab) for _ in range(input_len - 1)] + [1], params)
               for i in range(batch_size)]
    slots = list(range(batch_size))
    with torch.inference_mode():
        runner.execute(SchedulerOutput(prefill=prefill))
        for _ in range(position - 1):
            runner.execute(SchedulerOutput(decode_slots=slots))
    return runner, slots


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16, float16, or int8 (linears)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--position", type=int, default=64)
    parser.add_argument("--input-len", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = profile_decode_step(args.model_dir, args.device, args.dtype, args.batch, args.position,
                                 args.input_len)
    print(f"decode step ({args.dtype}, {args.threads} threads), batch {args.batch} at position "
          f"{args.position}, input {args.input_len}: {result['step_ms']:.1f} ms wall "
          f"({result['profiled_step_ms']:.1f} ms profiled)")
    for part, ms in result["ms_by_part"].items():
        print(f"  {part:<48}{ms:8.2f} ms")
    return result


if __name__ == "__main__":
    main()
