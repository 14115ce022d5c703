"""Loading every family: where each Hugging Face linear went, what the KV cache costs, how long
inputs and outputs may be, and a clear error (with nothing left in memory) for a bad directory."""
from __future__ import annotations

import gc
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSeq2SeqLM, BertConfig, EncoderDecoderConfig, GPT2Config, PreTrainedModel

from kernels.families import SUPPORTED_MODEL_TYPES, family_spec
from kernels.loader import ModelLoadError, load_generator, model_task
from scheduler.request import Task
from kernels.memory import reader_bytes
from kernels.regroup import seq2seq_weights
from kernels.runner import ModelRunner
from tests.family_models import FAMILIES


def copy_model(source, target, leave_out: tuple[str, ...] = ()):
    for path in source.iterdir():
        if path.name not in leave_out:
            shutil.copy(path, target / path.name)
    return target


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_layer_linear_is_found_in_its_fused_weight(family_dir, family):
    model = AutoModelForSeq2SeqLM.from_pretrained(family_dir(family)).eval()
    w = seq2seq_weights(model, family_spec(model.config))
    stacks = (family_spec(model.config).encoder.layers, family_spec(model.config).decoder.layers)
    linears = {name: module for name, module in model.named_modules()
               if isinstance(module, torch.nn.Linear) and name.startswith(stacks)}
    assert set(w.sources) == set(linears) and len(linears) >= 14
    covered: dict[tuple, list] = {}
    for name, source in w.sources.items():
        fused = getattr(getattr(w, source.stack)[source.layer], source.field)
        start, stop = source.rows
        assert torch.equal(fused.weight[start:stop], linears[name].weight)
        if linears[name].bias is not None:
            assert torch.equal(fused.bias[start:stop], linears[name].bias)
        covered.setdefault((source.stack, source.layer, source.field), []).append(source.rows)
    for (stack, layer, field), rows in covered.items():  # the sources tile each fused weight
        rows.sort()
        height = getattr(getattr(w, stack)[layer], field).weight.shape[0]
        assert rows[0][0] == 0 and rows[-1][1] == height
        assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))


@pytest.mark.parametrize("family", ["marian", "electra2bert"])
def test_kv_cache_estimate_matches_the_runner_and_lengths_follow_the_positions(family_dir, family):
    path = family_dir(family)
    assert model_task(path) is Task.GENERATE
    generator = load_generator(path)
    assert generator.max_input_len <= 128 and generator.max_target_len == 128
    runner = ModelRunner(generator, max_num_seqs=3, max_len=512, max_input_len=40)
    assert runner.max_len == 128  # cut to the decoder's position table
    estimate = reader_bytes(path, "float32", "cpu", num_slots=3, max_len=128, max_input_len=40)
    assert estimate - reader_bytes(path, "float32", "cpu") == runner.kv_cache_bytes > 0


def test_an_unknown_model_type_names_the_supported_ones(tmp_path):
    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="'gpt2' model") as error:
        load_generator(tmp_path)
    assert all(name in str(error.value) for name in SUPPORTED_MODEL_TYPES)


def test_an_encoder_decoder_without_a_bert_decoder_is_refused(tmp_path):
    decoder = GPT2Config(n_layer=1, n_embd=8, n_head=2, add_cross_attention=True, is_decoder=True)
    EncoderDecoderConfig.from_encoder_decoder_configs(BertConfig(), decoder).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="decoder must be a 'bert' with add_cross_attention"):
        load_generator(tmp_path)


def live_models() -> int:
    gc.collect()
    return sum(issubclass(type(o), PreTrainedModel) for o in gc.get_objects())


def shrink_ffn(path) -> None:
    config = json.loads((path / "config.json").read_text())
    config["encoder_ffn_dim"] = 48
    (path / "config.json").write_text(json.dumps(config))


def drop_a_tensor(path) -> None:
    tensors = load_file(path / "model.safetensors")
    del tensors["model.decoder.layers.1.fc2.weight"]
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize("damage, message", [
    (shrink_ffn, r"model.safetensors does not match .*config.json: model.encoder.layers.0.fc\d.(weight|bias) is"),
    (drop_a_tensor, "lack 1 tensor.* model.decoder.layers.1.fc2.weight"),
    (lambda path: (path / "tokenizer.json").unlink(), "no tokenizer files"),
])
def test_a_damaged_directory_is_a_clear_error_and_nothing_stays_loaded(family_dir, tmp_path, damage, message):
    path = copy_model(family_dir("bart"), tmp_path)
    damage(path)
    before = live_models()
    with pytest.raises(ModelLoadError, match=message):
        load_generator(path)
    assert live_models() == before
