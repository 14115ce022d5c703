"""Where one decode step's time goes, from torch.profiler's per-op times of real runner steps.

    python -m benchmarks.profile_step MODEL_DIR [--dtype bfloat16] [--batch 48] [--position 64]
        [--input-len 96] [--threads 2] [--num-beams 4]

A runner holds `batch_size` sequences at decoder position `position` with `input_len` encoder
tokens (with --num-beams k: `batch_size` beam searches of k beams, each step going on from the
last one's k best candidates as the scheduler would); each of `repeats` decode steps is
profiled. Ops are grouped into the step's parts; what the ops leave of the profiled step's wall
time is Python, dispatch (the runner's bookkeeping, the sampling loop, building tensors) and the
profiler's own cost per op, which makes profiled steps slower: step_ms is the median step
without the profiler.
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
from scheduler.output import BeamStep, PrefillInput, SchedulerOutput
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
         "aten::argmax": "choosing tokens", "aten::index_put_": "choosing tokens",
         "aten::topk": "choosing tokens", "aten::_log_softmax": "choosing tokens"}
ELEMENTWISE = "elementwise (norms, activation, residual adds, masks)"


def profile_decode_step(model_dir, device: str, dtype: str, batch_size: int, position: int,
                        input_len: int, repeats: int = 10, num_beams: int = 1) -> dict:
    quantize = "int8" if dtype == "int8" else "none"  # int8 linears, float32 between them
    generator = load_generator(model_dir, device=device, dtype="float32" if quantize == "int8" else dtype,
                               quantize=quantize)
    generator.weights.lm_head = _Labelled(generator.weights.lm_head, "lm_head")
    steps = _running_batch(generator, batch_size, position, input_len, repeats, num_beams)
    follow_beams = steps.runner._follow_beams
    steps.runner._follow_beams = lambda beam_steps: _labelled(follow_beams, "beam row moves", beam_steps)
    with torch.inference_mode():
        steps.run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            steps.run()
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                steps.run()
        profiled_ms = (time.perf_counter() - start) * 1e3 / repeats
    ms_by_part: dict[str, float] = defaultdict(float)
    moves_ms = 0.0
    for event in prof.key_averages():
        if event.key == "beam row moves":  # a total; its copies count in their own parts too
            moves_ms = event.cpu_time_total / 1e3 / repeats
        elif event.key == "lm_head":  # its matmul's time, moved out of the linear layers
            ms_by_part["lm_head"] += event.cpu_time_total / 1e3 / repeats
            ms_by_part["linear layers"] -= event.cpu_time_total / 1e3 / repeats
        else:
            ms_by_part[PARTS.get(event.key, ELEMENTWISE)] += event.self_cpu_time_total / 1e3 / repeats
    ms_by_part["Python, dispatch and the profiler's own cost"] = profiled_ms - sum(ms_by_part.values())
    return {"dtype": dtype, "batch_size": batch_size, "num_beams": num_beams, "beam_row_moves_ms": round(moves_ms, 2),
            "position": position, "input_len": input_len,
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


def _labelled(function, name: str, *args):
    with record_function(name):
        return function(*args)


def _running_batch(generator, batch_size: int, position: int, input_len: int, repeats: int,
                   num_beams: int = 1):
    """Steps of a runner whose sequences (batch_size requests of num_beams each) are all at
    decoder position `position`."""
    max_len = position + 2 * repeats + 8  # warm-up, timed and profiled steps
    runner = ModelRunner(generator, max_num_seqs=batch_size * num_beams, max_len=max_len, max_input_len=input_len)
    rng = random.Random(0)
    vocab = generator.weights.embed.shape[0]
    params = SamplingParams(max_new_tokens=max_len, min_new_tokens=max_len, num_beams=num_beams)
    prefill = [PrefillInput(str(i), i * num_beams, [rng.randrange(3, vocab) for _ in range(input_len - 1)] + [1],
                            params, list(range(i * num_beams + 1, (i + 1) * num_beams)))
               for i in range(batch_size)]
    steps = _Steps(runner, list(range(batch_size * num_beams)), None)
    with torch.inference_mode():
        steps.last = runner.execute(SchedulerOutput(prefill=prefill))
        for _ in range(position - 1):
            steps.run()
    return steps


class _Steps:
    """Decode steps of every slot; beam searches go on from their last step's k best candidates
    (with EOS held back, none is done: what the scheduler's BeamSearch would choose)."""

    def __init__(self, runner, slots: list[int], last) -> None:
        self.runner, self.slots, self.last = runner, slots, last
        self.num_generated = 1

    def run(self) -> None:
        beam_steps = []
        for request_id, candidates in self.last.beam_candidates.items():
            k = len(candidates.beams) // 2
            beam_steps.append(BeamStep(request_id, candidates.beams[:k], candidates.token_ids[:k],
                                       candidates.scores[:k], self.num_generated))
        self.num_generated += 1
        self.last = self.runner.execute(SchedulerOutput(decode_slots=self.slots, beam_steps=beam_steps))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16, float16, or int8 (linears)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--position", type=int, default=64)
    parser.add_argument("--input-len", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-beams", type=int, default=1, help="beams per request (batch: requests)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = profile_decode_step(args.model_dir, args.device, args.dtype, args.batch, args.position,
                                 args.input_len, num_beams=args.num_beams)
    print(f"decode step ({args.dtype}, {args.threads} threads), batch {args.batch} x {args.num_beams} "
          f"beams at position {args.position}, input {args.input_len}: {result['step_ms']:.1f} ms wall "
          f"({result['profiled_step_ms']:.1f} ms profiled)")
    for part, ms in result["ms_by_part"].items():
        print(f"  {part:<48}{ms:8.2f} ms")
    return result


if __name__ == "__main__":
    main()
