"""The offline benchmark's beam-search workload (issue 27).

flan-t5-small-beams: the flan-t5-small workload's model and requests (64; inputs of 40-56
tokens; exactly 16-128 new tokens each) searched with num_beams 4; marian-beams: the marian
workload's (opus-mt-en-de's shape) likewise. Hugging Face runs static
generate(num_beams=4) batches in which every row keeps its own length (EOS held back until its
min_new_tokens, its candidates done at its max_new_tokens), so an HF row computes what the engine
computes for its request and their tokens must agree; a batch still runs until its longest row
ends. CTranslate2 runs translate_batch(beam_size=4) with one length per batch, its outputs cut to
each request's length, as in the greedy workloads.

Beside the rows (`beam_report`): the KV bytes a beam request holds against num_beams single
requests, and the cost of moving beams between KV rows as kernels/beam.py does (a parent's first
child keeps the parent's row; only further children are copied) against copying every beam's
row from its parent (what Hugging Face's reorder_cache does), replayed on the beam steps of an
engine run over 16 of the requests.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from tqdm import tqdm

from benchmarks.baselines.hf import MinNewTokensPerRow
from benchmarks.offline_families import marian
from benchmarks.offline_systems import BenchRequest, SystemResult, run_engine
from benchmarks.offline_workloads import Workload, flan_t5_small
from scheduler.sampling_params import SamplingParams

NUM_BEAMS = 4
NUM_REPLAYED = 16  # requests whose beam steps the row-move replay records


def searched(greedy: Workload, name: str) -> Workload:
    """A greedy workload's model and requests, each searched with NUM_BEAMS beams."""
    requests = [BenchRequest(r.prompt_ids, r.num_tokens, params=SamplingParams(
        max_new_tokens=r.num_tokens, min_new_tokens=r.num_tokens, num_beams=NUM_BEAMS)) for r in greedy.requests]
    return replace(greedy, name=name, requests=requests, num_beams=NUM_BEAMS, run_hf=run_hf_beams,
                   report=beam_report)


def flan_t5_small_beams(tmp: Path, seed: int, num_requests: int | None, quick: bool) -> Workload:
    return searched(flan_t5_small(tmp, seed, num_requests, quick), "flan-t5-small-beams")


def marian_beams(tmp: Path, seed: int, num_requests: int | None, quick: bool) -> Workload:
    return searched(marian(tmp, seed, num_requests, quick), "marian-beams")


BEAM_WORKLOADS = {"flan-t5-small-beams": flan_t5_small_beams, "marian-beams": marian_beams}


class MaxNewTokensPerRow(StoppingCriteria):
    """Each request's beam candidates are done at its own max_new_tokens (generate's applies one
    value to the whole batch). Beam search hands over 2 * num_beams candidates per request."""

    def __init__(self, max_new_tokens: list[int], num_beams: int) -> None:
        self.max_new_tokens = torch.tensor(max_new_tokens).repeat_interleave(2 * num_beams)

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        num_generated = input_ids.shape[1] - 1  # after the decoder start token
        return (self.max_new_tokens <= num_generated).to(input_ids.device)


def run_hf_beams(model, requests: list[BenchRequest], batch_size: int, name: str) -> SystemResult:
    """HF generate(num_beams=...) on static batches, each row held to its own length."""
    outputs = []
    start, cpu_start = time.perf_counter(), time.process_time()
    for first in tqdm(range(0, len(requests), batch_size), desc=name, leave=False):
        chunk = requests[first:first + batch_size]
        num_beams = chunk[0].sampling.num_beams
        width = max(len(r.prompt_ids) for r in chunk)
        pad = model.config.pad_token_id  # Marian's is its last id; its </s> is 0
        input_ids = torch.tensor([r.prompt_ids + [pad] * (width - len(r.prompt_ids)) for r in chunk])
        mask = torch.tensor([[1] * len(r.prompt_ids) + [0] * (width - len(r.prompt_ids)) for r in chunk])
        lengths = [r.num_tokens for r in chunk]
        minimum = MinNewTokensPerRow([n for n in lengths for _ in range(num_beams)], model.config.eos_token_id)
        with torch.inference_mode():
            out = model.generate(input_ids.to(model.device),
                                 attention_mask=mask.to(model.device), do_sample=False, num_beams=num_beams, max_new_tokens=max(lengths),
                                 logits_processor=[minimum],
                                 stopping_criteria=StoppingCriteriaList([MaxNewTokensPerRow(lengths, num_beams)]))
        outputs += [row[1:1 + n] for n, row in zip(lengths, out.tolist())]
    return SystemResult(name, outputs, time.perf_counter() - start, time.process_time() - cpu_start)


def beam_report(workload: Workload, device: str) -> dict:
    """KV bytes per beam request against num_beams single ones, and the row-move replay."""
    from kernels.loader import load_generator
    from kernels.runner import ModelRunner

    generator = load_generator(workload.model_dir, device=device)
    requests = workload.requests[:NUM_REPLAYED]
    max_len = max(r.num_tokens for r in workload.requests)
    input_len = max(len(r.prompt_ids) for r in workload.requests)
    num_slots = NUM_BEAMS * len(requests)
    runner = ModelRunner(generator, max_num_seqs=num_slots, max_len=max_len, max_input_len=input_len)
    recorder = _MoveRecorder(runner)
    run_engine(recorder, generator.tokenizer, generator.eos_token_id, requests, num_slots, name="replay run")
    cache = runner.cache
    self_position = cache.self_kv.nbytes // (cache.num_rows * cache.max_len)  # K and V, every layer
    cross_position = cache.cross_kv.nbytes // (cache.num_rows * cache.max_input_len)
    beam = NUM_BEAMS * max_len * self_position + input_len * cross_position
    single = max_len * self_position + input_len * cross_position
    return {"kv_bytes": {"max_new_tokens": max_len, "input_tokens": input_len, "beam_request": beam,
                         f"{NUM_BEAMS}_single_requests": NUM_BEAMS * single,
                         "ratio": round(beam / (NUM_BEAMS * single), 3)},
            "row_moves": recorder.replay()}


class _MoveRecorder:
    """The runner, noting before each step every beam search's rows (beam order), parents and
    the cache's capacity; `replay` then times both ways of moving the beams on that cache."""

    def __init__(self, runner) -> None:
        self.runner, self.steps = runner, []
        self.kv_cache_bytes = runner.kv_cache_bytes

    def execute(self, scheduler_output, between_layers=None):
        runner = self.runner
        moves = [([runner.slots[slot].row for slot in runner.beams[step.request_id].slots], step.parents)
                 for step in scheduler_output.beam_steps]
        if moves:
            self.steps.append((runner.cache.self_kv.capacity, len(runner.row_slots), moves))
        return runner.execute(scheduler_output, between_layers)

    def replay(self) -> dict:
        from kernels.beam import follow
        from kernels.sampling import SlotState

        kv = self.runner.cache.self_kv
        copied, times = {"first child keeps the row": 0, "every row copied": 0}, {}
        seconds = dict.fromkeys(copied, 0.0)
        with torch.inference_mode():
            for capacity, num_used, moves in self.steps:
                kv.fit(capacity, num_used)
                beams = [[SlotState("", SamplingParams(), 1, [0], row=row) for row in rows] for rows, _ in moves]
                kept = [copy for states, (_, parents) in zip(beams, moves) for copy in follow(states, parents)[1]]
                every = [(rows[p], row) for rows, parents in moves for p, row in zip(parents, rows)]
                for way, copies in (("first child keeps the row", kept), ("every row copied", every)):
                    start = time.perf_counter()
                    if copies:
                        kv.copy_rows([s for s, _ in copies], [t for _, t in copies])
                    seconds[way] += time.perf_counter() - start
                    copied[way] += len(copies)
        num_steps = max(1, len(self.steps))
        for way in copied:
            times[way] = {"rows_copied_per_step": round(copied[way] / num_steps, 2),
                          "ms_per_step": round(seconds[way] * 1e3 / num_steps, 3)}
        return {"steps": len(self.steps), "requests": NUM_REPLAYED, **times}
