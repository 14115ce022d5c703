"""Every way an adapter directory can be wrong is one LoraError naming the adapter and the problem,
and the runner it was meant for goes on serving."""
from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from benchmarks.models import save_random_lora
from kernels.loader import ModelLoadError, load_generator
from kernels.lora_adapter import LoraError, load_lora
from kernels.runner import ModelRunner
from scheduler.output import PrefillInput, SchedulerOutput
from scheduler.sampling_params import SamplingParams

GOOD = dict(r=4, lora_alpha=8, target_modules=["q", "v", "wo"])


@pytest.fixture(scope="module")
def good_adapter(tiny_t5_dir, tmp_path_factory):
    return save_random_lora(tiny_t5_dir, tmp_path_factory.mktemp("good-lora"), **GOOD)


def with_config(path, **changes):
    config = json.loads((path / "adapter_config.json").read_text())
    (path / "adapter_config.json").write_text(json.dumps({**config, **changes}))


def with_weights(path, change):
    file = path / "adapter_model.safetensors"
    tensors = load_file(file)
    change(tensors)
    save_file(tensors, file)


def drop_first_b(tensors):
    del tensors[next(k for k in tensors if k.endswith("lora_B.weight"))]


def add_embedding_lora(tensors):
    tensors["base_model.model.shared.lora_embedding_A"] = next(iter(tensors.values())).clone()


# name -> (how to spoil a copy of the good adapter, what the error must say)
SPOILED = {
    "no config": (lambda p: (p / "adapter_config.json").unlink(), "has no adapter_config.json"),
    "config not JSON": (lambda p: (p / "adapter_config.json").write_text("{r: 4"), "is not readable JSON"),
    "no weights": (lambda p: (p / "adapter_model.safetensors").unlink(),
                   "has no adapter_model.safetensors or adapter_model.bin"),
    "weights not readable": (lambda p: (p / "adapter_model.safetensors").write_bytes(b"\x00" * 16),
                             "adapter_model.safetensors could not be read"),
    "not LoRA": (lambda p: with_config(p, peft_type="IA3"), "is a 'IA3' adapter; only LoRA"),
    "modules_to_save": (lambda p: with_config(p, modules_to_save=["lm_head"]),
                        "uses modules_to_save (whole modules saved beside the adapter), which this server does not"),
    "DoRA": (lambda p: with_config(p, use_dora=True), "uses DoRA (use_dora)"),
    "bad r": (lambda p: with_config(p, r=0), "r must be a positive integer, not 0"),
    "bad alpha": (lambda p: with_config(p, lora_alpha="eight"), "lora_alpha must be a number"),
    "no targets": (lambda p: with_config(p, target_modules=None), "target_modules must be a list"),
    "targets of another model": (lambda p: with_config(p, target_modules=["query", "value"]),
                                 "target_modules ['query', 'value'] match none of this base model's linears"),
    "weights of an untargeted module": (lambda p: with_config(p, target_modules=["q", "v"]),
                                        "which its target_modules ['q', 'v'] do not name"),
    "rank differs from config": (lambda p: with_config(p, r=8), "has rank 4, its config says 8"),
    "missing B": (lambda p: with_weights(p, drop_first_b), "has no lora_B weight"),
    "embedding LoRA": (lambda p: with_weights(p, add_embedding_lora),
                       "weight 'base_model.model.shared.lora_embedding_A' is not the lora_A or lora_B"),
}


@pytest.mark.parametrize("case", list(SPOILED))
def test_a_spoiled_adapter_is_a_clear_error(tiny_t5_dir, good_adapter, tmp_path, case):
    generator = load_generator(tiny_t5_dir)
    path = shutil.copytree(good_adapter, tmp_path / "adapter")
    spoil, message = SPOILED[case]
    spoil(path)
    with pytest.raises(LoraError, match="adapter 'mine'") as error:
        load_lora("mine", path, generator)
    assert message in str(error.value)
    assert isinstance(error.value, ModelLoadError)  # the server's load errors: a 400, no traceback


def test_adapters_for_another_base_are_refused(tiny_t5_shape_dir, tiny_t5_dir, tmp_path):
    generator = load_generator(tiny_t5_dir)  # d_model 32, 2 + 2 layers
    wide = save_random_lora(tiny_t5_shape_dir("gated-gelu-tied-wide"), tmp_path / "wide", **GOOD)  # d_model 48
    with pytest.raises(LoraError, match=r"SelfAttention.q has lora_A \[4, 48\] and lora_B \[72, 4\], but "
                                        r"this base's .* maps 32 inputs to 32 outputs"):
        load_lora("wide", wide, generator)
    deep = save_random_lora(tiny_t5_shape_dir("deep-decoder"), tmp_path / "deep", **GOOD)  # 4 decoder layers
    with pytest.raises(LoraError, match="adapts decoder.block.2.layer.0.SelfAttention.q, which is not"):
        load_lora("deep", deep, generator)
    head = save_random_lora(tiny_t5_dir, tmp_path / "head", r=2, target_modules=["lm_head"])
    with pytest.raises(LoraError, match="adapts lm_head, which is not an attention or feed-forward linear"):
        load_lora("head", head, generator)


def test_a_path_that_is_not_a_directory_and_a_missing_name(tiny_t5_dir, good_adapter):
    generator = load_generator(tiny_t5_dir)
    with pytest.raises(LoraError, match="adapter 'x': .*adapter_config.json does not exist or is not a directory"):
        load_lora("x", good_adapter / "adapter_config.json", generator)
    with pytest.raises(LoraError, match="does not exist or is not a directory"):
        load_lora("x", good_adapter / "missing", generator)
    with pytest.raises(LoraError, match="needs a non-empty name"):
        load_lora("", good_adapter, generator)


def test_the_runner_serves_on_after_refusing_bad_adapters(tiny_t5_dir, good_adapter, tmp_path):
    generator = load_generator(tiny_t5_dir)
    runner = ModelRunner(generator, max_num_seqs=2, max_len=16, max_input_len=64)
    runner.add_lora(load_lora("good", good_adapter, generator))
    prompt = generator.tokenizer("Thanks for the clear sprint demo")["input_ids"]
    params = SamplingParams(max_new_tokens=8, min_new_tokens=8)
    first = runner.execute(SchedulerOutput(prefill=[PrefillInput("a", 0, prompt, params, lora_id="good")]))
    bad = shutil.copytree(good_adapter, tmp_path / "bad")
    with_config(bad, target_modules=["query"])
    with pytest.raises(LoraError):
        runner.add_lora(load_lora("bad", bad, generator))
    with pytest.raises(LoraError, match="already loaded"):
        runner.add_lora(load_lora("good", good_adapter, generator))
    tokens = [first.next_token_ids["a"]] + next_tokens(runner, 7)
    alone = ModelRunner(generator, max_num_seqs=2, max_len=16, max_input_len=64)
    alone.add_lora(load_lora("good", good_adapter, generator))
    start = alone.execute(SchedulerOutput(prefill=[PrefillInput("a", 0, prompt, params, lora_id="good")]))
    assert tokens == [start.next_token_ids["a"]] + next_tokens(alone, 7)
    assert runner.lora_ids == ["good"]


def next_tokens(runner: ModelRunner, count: int) -> list[int]:
    """The next `count` tokens of the request in slot 0."""
    return [runner.execute(SchedulerOutput(decode_slots=[0])).next_token_ids["a"] for _ in range(count)]
