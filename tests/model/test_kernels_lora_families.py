"""LoRA adapters on families other than T5: an adapter's PEFT target modules are found through the
family's `sources`, and in float32 each request of a batch mixing two adapters and the base gets
the tokens of PEFT's model for its own adapter (with the model's generation_config, as served)."""
from __future__ import annotations

import pytest
from peft import PeftModel
from transformers import AutoModelForSeq2SeqLM

from benchmarks.models import save_random_lora
from benchmarks.offline_systems import BenchRequest, run_engine
from kernels.loader import load_generator
from kernels.lora_adapter import LoraError, load_lora
from kernels.runner import ModelRunner
from tests.model.test_families import hf_generate, request_params
from tests.model.test_kernels_t5 import ARRIVALS, MAX_NEW, prompts

# family -> two adapters' LoraConfig options, in the family's own module names
ADAPTERS = {
    "bart": {"attention": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "out_proj"]),
             "everything": dict(r=8, lora_alpha=16, use_rslora=True,
                                target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])},
    "marian": {"attention": dict(r=4, lora_alpha=8, target_modules=["k_proj", "v_proj"]),
               "everything": dict(r=6, lora_alpha=6, target_modules=["q_proj", "out_proj", "fc1", "fc2"])},
    "bert2bert": {"attention": dict(r=4, lora_alpha=8, target_modules=["query", "value"]),
                  "everything": dict(r=8, lora_alpha=16, target_modules=r".*(key|intermediate\.dense)")},
}
CYCLE = [None, "attention", "everything"]


def peft_model(base_dir, adapter_dir=None):
    model = AutoModelForSeq2SeqLM.from_pretrained(base_dir)
    return (PeftModel.from_pretrained(model, adapter_dir) if adapter_dir else model).eval()


@pytest.mark.parametrize("family", list(ADAPTERS))
def test_a_mixed_batch_gives_each_request_its_peft_models_tokens(family_dir, tmp_path, family):
    path = family_dir(family)
    dirs = {name: save_random_lora(path, tmp_path / name, seed=i, b_scale=0.3, **options)
            for i, (name, options) in enumerate(ADAPTERS[family].items())}
    generator = load_generator(path)
    runner = ModelRunner(generator, max_num_seqs=4, max_len=64, max_input_len=64)
    for name, adapter_dir in dirs.items():
        runner.add_lora(load_lora(name, adapter_dir, generator))
    inputs = prompts(generator.tokenizer)
    requests = [BenchRequest(ids, n, arrival, request_params(generator, max_new_tokens=n),
                             lora_id=CYCLE[i % len(CYCLE)])
                for i, (ids, n, arrival) in enumerate(zip(inputs, MAX_NEW, ARRIVALS))]
    outputs = run_engine(runner, generator.tokenizer, generator.eos_token_id, requests, 4).outputs
    models = {name: peft_model(path, dirs.get(name)) for name in CYCLE}
    assert outputs == [hf_generate(models[r.lora_id], r.prompt_ids, r.num_tokens) for r in requests]
    for name in CYCLE[1:]:  # each adapter changed some request's tokens: its update was applied
        assert any(o != hf_generate(models[None], r.prompt_ids, r.num_tokens)
                   for o, r in zip(outputs, requests) if r.lora_id == name)


def test_an_adapter_of_another_family_is_refused_naming_the_module(family_dir, tmp_path):
    bart = load_generator(family_dir("bart"))
    bert_adapter = save_random_lora(family_dir("bert2bert"), tmp_path / "bert", r=2, target_modules=["query"])
    with pytest.raises(LoraError, match=r"'bert-lora' adapts decoder\.bert\.encoder\.layer\.0\.attention"
                                        r"\.self\.query, which is not .* named like model\.encoder\.layers"
                                        r"\.0\.self_attn\.q_proj.*another base"):
        load_lora("bert-lora", bert_adapter, bart)
