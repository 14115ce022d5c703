"""Where one decode step's time goes: the runner around the model, matmuls, lm_head, attention,
and the rest (norms, activations, cache reads/writes, per-op dispatch).

Each part is timed alone with the step's own shapes; "rest" is the model time the parts leave."""
from __future__ import annotations

import random
import time

import torch
import torch.nn.functional as F

from kernels import t5
from kernels.loader import load_generator
from kernels.runner import ModelRunner
from scheduler.output import PrefillInput, SchedulerOutput
from scheduler.sampling_params import SamplingParams


def profile_decode_step(model_dir, device: str, batch_size: int, position: int, input_len: int,
                        repeats: int = 10) -> dict:
    generator = load_generator(model_dir, device=device)
    w = generator.weights
    runner, slots = _running_batch(generator, batch_size, position, input_len, repeats)
    step = _time(lambda: runner.execute(SchedulerOutput(decode_slots=slots)), repeats)
    states = [runner.slots[s] for s in slots]
    tokens = torch.tensor([s.token_ids[-1] for s in states], device=generator.device)

    def model_only():
        batch = runner.cache.step_batch([s.row for s in states], [s.position for s in states],
                                        [s.input_len for s in states])
        t5.decode_step(w, runner.cache, batch, tokens)

    with torch.inference_mode():
        model = _time(model_only, repeats)
        x = torch.randn(batch_size, w.embed.shape[1], dtype=generator.dtype, device=generator.device)
        a = torch.randn(batch_size, w.inner, dtype=generator.dtype, device=generator.device)
        layers = w.decoder

        def matmuls():
            for layer in layers:
                F.linear(x, layer.self_qkv), F.linear(a, layer.self_out), F.linear(x, layer.cross_q)
                F.linear(a, layer.cross_out)
                h = F.linear(x, layer.ff_in)
                F.linear(h[:, :layer.ff_out.shape[1]], layer.ff_out)

        kv = lambda length: torch.randn(batch_size, w.num_heads, length, w.d_kv, dtype=generator.dtype,
                                        device=generator.device)
        q, self_kv, cross_kv = kv(1), kv(position + 1), kv(input_len)
        self_bias, cross_bias = torch.zeros_like(q[:, :, :, :1]).expand(-1, -1, -1, position + 1), 0.0

        def attention():
            for _ in layers:
                t5.attend(q, self_kv, self_kv, self_bias)
                t5.attend(q, cross_kv, cross_kv, cross_bias)

        mm = _time(matmuls, repeats)
        lm_head = _time(lambda: F.linear(x, w.lm_head), repeats)
        attn = _time(attention, repeats)
    parts = {"runner outside the model": step - model, "matmuls (q/k/v, o, ff)": mm, "lm_head": lm_head,
             "attention": attn, "rest (norms, cache, dispatch)": model - mm - lm_head - attn}
    return {"batch_size": batch_size, "position": position, "input_len": input_len,
            "clock": "wall" if torch.cuda.is_available() else "process CPU time",
            "step_ms": round(step * 1e3, 2), "ms_by_part": {k: round(v * 1e3, 2) for k, v in parts.items()}}


def _running_batch(generator, batch_size: int, position: int, input_len: int, repeats: int):
    """A runner whose slots 0..batch_size-1 are all at decoder position `position`."""
    runner = ModelRunner(generator, max_num_seqs=batch_size, max_len=position + repeats + 8,
                         max_input_len=input_len)
    rng = random.Random(0)
    params = SamplingParams(max_new_tokens=position + repeats + 8, min_new_tokens=position + repeats + 8)
    prefill = [PrefillInput(str(i), i, [rng.randrange(3, 1000) for _ in range(input_len - 1)] + [1], params)
               for i in range(batch_size)]
    with torch.inference_mode():
        runner.execute(SchedulerOutput(prefill=prefill))
        slots = list(range(batch_size))
        for _ in range(position - 1):
            runner.execute(SchedulerOutput(decode_slots=slots))
    return runner, slots


def _time(fn, repeats: int) -> float:
    """Median seconds per call: CPU seconds of this process on CPU (on a machine shared with
    other work, wall time mostly measures the others), wall seconds on CUDA."""
    clock = time.perf_counter if torch.cuda.is_available() else time.process_time
    with torch.inference_mode():
        fn()
        times = []
        for _ in range(repeats):
            start = clock()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(clock() - start)
    return sorted(times)[len(times) // 2]
