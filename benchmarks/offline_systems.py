"""The systems the offline benchmark compares, each run on the same requests and saved model.

Every request asks for an exact number of tokens (EOS suppressed until then), identically for
every system, so they all do the same useful work; tokens a static batch computes past a
request's own length are not counted.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace

import torch
from tqdm import tqdm

from scheduler.request import Request, Task
from scheduler.sampling_params import SamplingParams
from scheduler.scheduler import Scheduler, SchedulerConfig
from takeoff.engine.core import EngineCore, Lane


@dataclass
class BenchRequest:
    prompt_ids: list[int]  # EOS-terminated encoder input
    num_tokens: int  # tokens this request wants, exactly
    arrival_step: int = 0  # engine driver: the step at which the request is submitted
    params: SamplingParams | None = None  # engine driver: other parameters than "exactly num_tokens"

    @property
    def sampling(self) -> SamplingParams:
        if self.params is not None:
            return self.params
        return SamplingParams(max_new_tokens=self.num_tokens, min_new_tokens=self.num_tokens)


@dataclass
class SystemResult:
    name: str
    outputs: list[list[int]]  # each request's generated ids, cut to its own length
    total_s: float
    cpu_s: float = 0.0  # CPU seconds of this process (all threads): steadier than wall time
    kv_cache_bytes: int | None = None  # the engine's preallocated cache
    dtype: str = "float32"  # the weights' dtype (CTranslate2: its compute type)
    # Beam searches: each request's returned hypotheses (scheduler.beams.BeamSequence), best first.
    sequences: list[list] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return sum(len(o) for o in self.outputs)

    @property
    def tokens_per_s(self) -> float:
        return self.num_tokens / self.total_s


def make_requests(num_requests: int, vocab_size: int, seed: int = 0, input_lens=(40, 56),
                  output_lens=(16, 128), eos_token_id: int = 1) -> list[BenchRequest]:
    rng = random.Random(seed)
    requests = []
    for num_tokens in spread(num_requests, output_lens):
        prompt = [rng.randrange(3, vocab_size) for _ in range(rng.randint(*input_lens) - 1)]
        requests.append(BenchRequest(prompt + [eos_token_id], num_tokens))
    rng.shuffle(requests)
    return requests


def spread(count: int, bounds: tuple[int, int]) -> list[int]:
    """`count` lengths evenly spread from bounds[0] to bounds[1], ascending."""
    low, high = bounds
    return [round(low + i / max(1, count - 1) * (high - low)) for i in range(count)]


def run_hf(model, requests: list[BenchRequest], batch_size: int, name: str) -> SystemResult:
    """Hugging Face generate on static batches: each batch runs until its longest request is done."""
    outputs = []
    start, cpu_start = time.perf_counter(), time.process_time()
    for chunk in tqdm(_chunks(requests, batch_size), desc=name, leave=False):
        width = max(len(r.prompt_ids) for r in chunk)
        input_ids = torch.tensor([r.prompt_ids + [0] * (width - len(r.prompt_ids)) for r in chunk])
        longest = max(r.num_tokens for r in chunk)
        with torch.inference_mode():
            out = model.generate(input_ids.to(model.device), attention_mask=(input_ids != 0).long().to(model.device),
                                 do_sample=False, max_new_tokens=longest, min_new_tokens=longest)
        outputs += [row[1:1 + r.num_tokens] for r, row in zip(chunk, out.tolist())]
    return SystemResult(name, outputs, time.perf_counter() - start, time.process_time() - cpu_start)


def load_hf(model_dir, dtype: str, device: str, requests: list[BenchRequest]):
    """Hugging Face's T5 from `model_dir` in `dtype` on `device`, warmed up on `requests`."""
    from transformers import T5ForConditionalGeneration

    from kernels.devices import DTYPES

    model = T5ForConditionalGeneration.from_pretrained(model_dir, dtype=DTYPES[dtype]).to(device).eval()
    run_hf(model, warm_up(requests), 2, "warm-up")
    return model


def warm_up(requests: list[BenchRequest]) -> list[BenchRequest]:
    """Two requests of 4 tokens (their own other parameters kept, num_beams among them): each
    system's first call pays for allocations and kernel choice."""
    return [BenchRequest(r.prompt_ids, 4, params=replace(r.sampling, max_new_tokens=4, min_new_tokens=4))
            for r in requests[:2]]


def run_ct2(translator, vocab: list[str], requests: list[BenchRequest], batch_size: int,
            name: str, beam_size: int = 1) -> SystemResult:
    """CTranslate2 translate_batch on the same static batches (greedy, or beam_size beams)."""
    index = {token: i for i, token in enumerate(vocab)}
    outputs = []
    start, cpu_start = time.perf_counter(), time.process_time()
    for chunk in tqdm(_chunks(requests, batch_size), desc=name, leave=False):
        longest = max(r.num_tokens for r in chunk)
        results = translator.translate_batch([[vocab[t] for t in r.prompt_ids] for r in chunk],
                                             max_batch_size=batch_size, beam_size=beam_size,
                                             max_decoding_length=longest, min_decoding_length=longest)
        outputs += [[index[t] for t in res.hypotheses[0][:r.num_tokens]] for r, res in zip(chunk, results)]
    return SystemResult(name, outputs, time.perf_counter() - start, time.process_time() - cpu_start)


def run_engine(runner, tokenizer, eos_token_id: int, requests: list[BenchRequest],
               max_num_seqs: int, max_num_batched_tokens: int = 4096, name: str = "engine",
               on_step=None) -> SystemResult:
    """Continuous batching: the server's own EngineCore.step() over the project's scheduler and
    runner, with no server around them. Requests are submitted at their arrival_step;
    on_step(step, scheduler_output) sees what each step ran."""
    scheduler = Scheduler(SchedulerConfig(max_num_seqs=max_num_seqs,
                                          max_num_batched_tokens=max_num_batched_tokens,
                                          max_classify_batch=1, queue_timeout_s=1e9),
                          decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True))
    core = EngineCore()
    observed = _ObservedRunner(runner, on_step)
    core.add_lane(Lane(name, scheduler, observed, holds_slots=True))
    pending = sorted(enumerate(requests), key=lambda item: item[1].arrival_step)
    submitted: list[Request | None] = [None] * len(requests)
    start, cpu_start = time.perf_counter(), time.process_time()
    with tqdm(total=sum(r.num_tokens for r in requests), desc=name, leave=False) as bar:
        while pending or core.has_work:
            while pending and pending[0][1].arrival_step <= observed.num_steps:
                i, r = pending.pop(0)
                submitted[i] = Request(str(i), Task.GENERATE, r.prompt_ids, r.sampling,
                                       eos_token_id=eos_token_id)
                core.add(submitted[i], name, stream=False)
            before = sum(len(r.output_ids) for r in submitted if r is not None)
            core.step()
            bar.update(sum(len(r.output_ids) for r in submitted if r is not None) - before)
            observed.num_steps += not core.has_work and bool(pending)  # idle: time moves on
    return SystemResult(name, [list(r.output_ids) for r in submitted], time.perf_counter() - start,
                        time.process_time() - cpu_start, runner.kv_cache_bytes,
                        sequences=[list(r.sequences) for r in submitted])


class _ObservedRunner:
    """The runner, counting steps and showing each one to `on_step`."""

    def __init__(self, runner, on_step) -> None:
        self.runner, self.on_step, self.num_steps = runner, on_step, 0

    def execute(self, scheduler_output, between_layers=None):
        if self.on_step is not None:
            self.on_step(self.num_steps, scheduler_output)
        self.num_steps += 1
        return self.runner.execute(scheduler_output, between_layers)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]
