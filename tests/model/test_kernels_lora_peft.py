"""LoRA adapters per request: rows of different adapters (and of none) share each step, and every
request gets the tokens of PEFT's model for its own adapter."""
from __future__ import annotations

from dataclasses import replace

import pytest
from peft import PeftModel
from transformers import T5ForConditionalGeneration

from benchmarks.models import save_random_lora
from benchmarks.offline_systems import BenchRequest, run_engine
from kernels.loader import load_generator
from kernels.lora_adapter import LoraError, load_lora
from kernels.runner import ModelRunner
from scheduler.sampling_params import SamplingParams
from tests.model.test_kernels_t5 import ARRIVALS, MAX_NEW, hf_greedy, prompts

# Four adapters of different ranks, targets (a list, a regular expression, per-module rank and
# alpha) and scalings (one rsLoRA).
ADAPTERS = {
    "qv": dict(r=4, lora_alpha=8, target_modules=["q", "v"]),
    "all-rslora": dict(r=8, lora_alpha=16, use_rslora=True,
                       target_modules=["q", "k", "v", "o", "wi_0", "wi_1", "wo"]),
    "ff-regex": dict(r=2, lora_alpha=4, target_modules=r".*decoder.*DenseReluDense\.(wi_1|wo)"),
    "patterns": dict(r=6, lora_alpha=12, target_modules=["k", "o", "wi_0"],
                     rank_pattern={"EncDecAttention.k": 3}, alpha_pattern={"o": 3}),
}
# The adapter of each request, in turn: the base model, then each adapter.
CYCLE = [None, *ADAPTERS]


@pytest.fixture(scope="module")
def adapter_dirs(decisive_t5_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("loras")
    return {name: save_random_lora(decisive_t5_dir, root / name, seed=i, b_scale=0.2, **options)
            for i, (name, options) in enumerate(ADAPTERS.items())}


def mixed_requests(tokenizer) -> list[BenchRequest]:
    """Twenty requests (each prompt twice, with two different adapters), the adapters in turn,
    arriving over 17 steps."""
    inputs = prompts(tokenizer) * 2
    return [BenchRequest(ids, n, arrival + 2 * (i // 10), SamplingParams(max_new_tokens=n),
                         lora_id=CYCLE[(i + i // 10) % len(CYCLE)])
            for i, (ids, n, arrival) in enumerate(zip(inputs, MAX_NEW * 2, ARRIVALS * 2))]


def changed_by_each_adapter(outputs, base_outputs, requests) -> bool:
    """Whether every adapter changed what at least one of its requests wrote (so its update was
    really applied)."""
    return all(any(o != b for o, b, r in zip(outputs, base_outputs, requests) if r.lora_id == name)
               for name in ADAPTERS)


def lora_runner(generator, adapter_dirs, max_num_seqs: int) -> ModelRunner:
    runner = ModelRunner(generator, max_num_seqs=max_num_seqs, max_len=64, max_input_len=64)
    for name, path in adapter_dirs.items():
        runner.add_lora(load_lora(name, path, generator))
    return runner


def engine_outputs(generator, runner, requests, on_step=None) -> list[list[int]]:
    return run_engine(runner, generator.tokenizer, generator.eos_token_id, requests,
                      runner.max_num_seqs, on_step=on_step).outputs


def peft_model(base_dir, adapter_dir=None):
    model = T5ForConditionalGeneration.from_pretrained(base_dir)
    return (PeftModel.from_pretrained(model, adapter_dir) if adapter_dir else model).eval()


def test_a_batch_of_four_adapters_and_the_base_gives_each_request_peft_tokens(decisive_t5_dir, adapter_dirs):
    generator = load_generator(decisive_t5_dir)
    requests = mixed_requests(generator.tokenizer)
    runner = lora_runner(generator, adapter_dirs, max_num_seqs=6)
    mixes, joins = [], []

    def on_step(step, out):  # the adapters (the base counting as one) of each step's running rows
        mixes.append(len({runner.slots[s].lora_id for s in out.decode_slots}))
        joins.append(bool(out.prefill and out.decode_slots))

    outputs = engine_outputs(generator, runner, requests, on_step)
    models = {name: peft_model(decisive_t5_dir, adapter_dirs.get(name)) for name in CYCLE}
    assert outputs == [hf_greedy(models[r.lora_id], r.prompt_ids, r.num_tokens) for r in requests]
    assert max(mixes) >= 4 and any(joins)
    base_outputs = [hf_greedy(models[None], r.prompt_ids, r.num_tokens) for r in requests]
    assert changed_by_each_adapter(outputs, base_outputs, requests)


@pytest.mark.parametrize("dtype,quantize", [("bfloat16", "none"), ("float32", "int8")])
def test_a_request_gets_the_same_tokens_alone_as_in_a_mixed_batch(decisive_t5_dir, adapter_dirs, dtype, quantize):
    """In bf16 and with int8 base weights, each row's update ignores the rest of the batch."""
    generator = load_generator(decisive_t5_dir, dtype=dtype, quantize=quantize)
    requests = mixed_requests(generator.tokenizer)
    mixed = engine_outputs(generator, lora_runner(generator, adapter_dirs, max_num_seqs=6), requests)
    alone = engine_outputs(generator, lora_runner(generator, adapter_dirs, max_num_seqs=1), requests)
    assert mixed == alone
    base_requests = [replace(r, lora_id=None) for r in requests]
    base_outputs = engine_outputs(generator, lora_runner(generator, {}, max_num_seqs=6), base_requests)
    assert changed_by_each_adapter(mixed, base_outputs, requests)


def test_adapters_come_and_go_between_steps(decisive_t5_dir, adapter_dirs):
    generator = load_generator(decisive_t5_dir)
    runner = ModelRunner(generator, max_num_seqs=4, max_len=64, max_input_len=64, max_loras=2)
    prompt, other = prompts(generator.tokenizer)[1], prompts(generator.tokenizer)[5]
    steps = StepDriver(runner)
    runner.add_lora(load_lora("qv", adapter_dirs["qv"], generator))
    steps.start("a", prompt, "qv")
    steps.run(3)
    runner.add_lora(load_lora("ff", adapter_dirs["ff-regex"], generator))  # while "a" decodes
    steps.start("b", other, "ff")
    steps.run(2)
    with pytest.raises(LoraError, match="'qv' is still used by 1 running request"):
        runner.remove_lora("qv")
    steps.finish("a")
    runner.remove_lora("qv")
    assert runner.lora_ids == ["ff"]
    steps.start("c", prompt, "qv")  # no longer loaded: this request alone fails
    steps.start("d", prompt, None)
    steps.run(20)
    assert steps.errors == {"c": "adapter 'qv' is not loaded on this reader"}
    models = {None: peft_model(decisive_t5_dir), "qv": peft_model(decisive_t5_dir, adapter_dirs["qv"]),
              "ff": peft_model(decisive_t5_dir, adapter_dirs["ff-regex"])}
    for request_id, ids, lora_id in (("a", prompt, "qv"), ("b", other, "ff"), ("d", prompt, None)):
        assert steps.tokens[request_id] == hf_greedy(models[lora_id], ids, 64)[:len(steps.tokens[request_id])]


class StepDriver:
    """Runs a runner step by step: requests start and finish when a test says (greedy, up to 64
    tokens, EOS ends them), each in its own slot."""

    def __init__(self, runner: ModelRunner):
        self.runner = runner
        self.tokens: dict[str, list[int]] = {}
        self.errors: dict[str, str] = {}
        self.slot_of: dict[str, int] = {}
        self.prefill, self.freed = [], []

    def start(self, request_id: str, prompt_ids: list[int], lora_id: str | None) -> None:
        from scheduler.output import PrefillInput

        slot = next(s for s in range(self.runner.max_num_seqs) if s not in self.slot_of.values())
        self.slot_of[request_id] = slot
        self.prefill.append(PrefillInput(request_id, slot, prompt_ids, SamplingParams(max_new_tokens=64),
                                         lora_id=lora_id))

    def finish(self, request_id: str) -> None:
        self.freed.append(self.slot_of.pop(request_id))
        self.run(1)

    def run(self, num_steps: int) -> None:
        from scheduler.output import SchedulerOutput

        eos = self.runner.generator.eos_token_id
        for _ in range(num_steps):
            running = [self.slot_of[r] for r, t in self.tokens.items()
                       if r in self.slot_of and t[-1] != eos]
            step = SchedulerOutput(prefill=self.prefill, decode_slots=running, freed_slots=self.freed)
            self.prefill, self.freed = [], []
            out = self.runner.execute(step)
            for request_id, token in out.next_token_ids.items():
                self.tokens.setdefault(request_id, []).append(token)
            for request_id, message in out.errors.items():
                self.errors[request_id] = message
                self.freed.append(self.slot_of.pop(request_id))


def test_a_runner_refuses_what_would_break_a_step_and_keeps_serving(decisive_t5_dir, adapter_dirs):
    generator = load_generator(decisive_t5_dir)
    runner = ModelRunner(generator, max_num_seqs=2, max_len=64, max_input_len=64, max_loras=1)
    runner.add_lora(load_lora("qv", adapter_dirs["qv"], generator))
    with pytest.raises(LoraError, match="an adapter named 'qv' is already loaded"):
        runner.add_lora(load_lora("qv", adapter_dirs["patterns"], generator))
    with pytest.raises(LoraError, match="max_loras"):
        runner.add_lora(load_lora("other", adapter_dirs["patterns"], generator))
    with pytest.raises(LoraError, match="no adapter named 'nope' is loaded"):
        runner.remove_lora("nope")
    bf16 = load_generator(decisive_t5_dir, dtype="bfloat16")
    runner.remove_lora("qv")
    with pytest.raises(LoraError, match="was loaded for another base model"):
        runner.add_lora(load_lora("qv", adapter_dirs["qv"], bf16))
    runner.add_lora(load_lora("qv", adapter_dirs["qv"], generator))
    steps = StepDriver(runner)
    prompt = prompts(generator.tokenizer)[3]
    steps.start("a", prompt, "qv")
    steps.run(12)
    expected = hf_greedy(peft_model(decisive_t5_dir, adapter_dirs["qv"]), prompt, 64)
    assert steps.tokens["a"] == expected[:len(steps.tokens["a"])] and not steps.errors
    # The adapter's layers wrap the base's own linears: nothing was merged or copied.
    assert runner.loras.weights.decoder[0].self_qkv.base is generator.weights.decoder[0].self_qkv
