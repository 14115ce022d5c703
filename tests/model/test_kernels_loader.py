"""Loading errors a user can act on, and the runner's slot bookkeeping."""
from __future__ import annotations

import shutil

import pytest
import torch
from transformers import GPT2Config

from kernels.loader import ModelLoadError, load_classifier, load_generator
from kernels.runner import ModelRunner
from scheduler.output import PrefillInput, SchedulerOutput
from scheduler.sampling_params import SamplingParams


def test_generator_exposes_what_the_engine_needs(tiny_t5_dir):
    generator = load_generator(tiny_t5_dir)
    assert (generator.eos_token_id, generator.pad_token_id, generator.decoder_start_token_id) == (1, 0, 0)
    assert generator.tokenizer.decode(generator.tokenizer("hello there")["input_ids"],
                                      skip_special_tokens=True) == "hello there"
    assert generator.max_input_len > 0 and str(generator.device) == "cpu"


@pytest.mark.parametrize("loader", [load_generator, load_classifier])
def test_missing_directory(loader, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        loader(tmp_path / "nowhere")


@pytest.mark.parametrize("loader", [load_generator, load_classifier])
def test_unsupported_architecture(loader, tmp_path):
    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="'gpt2' model"):
        loader(tmp_path)


def test_wrong_kind_of_model(tiny_t5_dir, tiny_classifier_dir):
    with pytest.raises(ModelLoadError, match="'t5' model; the classifier must be"):
        load_classifier(tiny_t5_dir)
    with pytest.raises(ModelLoadError, match="'electra' model; the generator must be"):
        load_generator(tiny_classifier_dir)


def test_missing_tokenizer_files(tiny_t5_dir, tmp_path):
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_t5_dir / name, tmp_path / name)
    with pytest.raises(ModelLoadError, match="no tokenizer files"):
        load_generator(tmp_path)


def test_missing_weights_and_bad_options(tiny_t5_dir, tmp_path):
    for path in tiny_t5_dir.iterdir():
        if path.name != "model.safetensors":
            shutil.copy(path, tmp_path / path.name)
    with pytest.raises(ModelLoadError, match="has no weights"):
        load_generator(tmp_path)
    with pytest.raises(ModelLoadError, match="dtype must be one of"):
        load_generator(tiny_t5_dir, dtype="float64")
    with pytest.raises(ModelLoadError, match="device"):
        load_generator(tiny_t5_dir, device="tpu")


def test_kv_cache_size_and_slot_lifecycle(tiny_t5_dir):
    generator = load_generator(tiny_t5_dir)
    w = generator.weights
    runner = ModelRunner(generator, max_num_seqs=3, max_len=10, max_input_len=20)
    per_token = 2 * len(w.decoder) * w.num_heads * w.d_kv * 4  # K and V, every layer, fp32
    assert runner.kv_cache_bytes == 3 * (10 + 20) * per_token

    prompt = generator.tokenizer("The onboarding guide")["input_ids"]
    params = SamplingParams(max_new_tokens=10, min_new_tokens=10)
    out = runner.execute(SchedulerOutput(prefill=[PrefillInput("a", 2, prompt, params)]))
    assert list(out.next_token_ids) == ["a"]
    for _ in range(9):
        runner.execute(SchedulerOutput(decode_slots=[2]))
    with pytest.raises(ValueError, match="max_len"):
        runner.execute(SchedulerOutput(decode_slots=[2]))
    runner.execute(SchedulerOutput(freed_slots=[2]))
    with pytest.raises(ValueError, match="holds no sequence"):
        runner.execute(SchedulerOutput(decode_slots=[2]))
    # An input the runner cannot take fails alone: the rest of the step runs.
    out = runner.execute(SchedulerOutput(prefill=[PrefillInput("b", 0, prompt * 10, params),
                                                  PrefillInput("ok", 1, prompt, params)]))
    assert "input tokens" in out.errors["b"] and list(out.next_token_ids) == ["ok"]
    with pytest.raises(ValueError, match="slot 3 is outside"):
        runner.execute(SchedulerOutput(prefill=[PrefillInput("c", 3, prompt, params)]))


def test_leaving_sequence_does_not_disturb_the_others(tiny_t5_dir):
    """Freeing a slot moves the last cache row into the hole; the moved sequence must not notice."""
    generator = load_generator(tiny_t5_dir)
    prompts = [generator.tokenizer(text)["input_ids"] for text in
               ("Your report was late again", "The onboarding guide is confusing.", "Thanks for the demo")]
    params = SamplingParams(max_new_tokens=12, min_new_tokens=12)

    def run(free_first_after: int | None) -> dict[int, list[int]]:
        runner = ModelRunner(generator, max_num_seqs=5, max_len=12, max_input_len=32)
        slots = [4, 0, 2]
        out = runner.execute(SchedulerOutput(prefill=[PrefillInput(str(s), s, p, params)
                                                      for s, p in zip(slots, prompts)]))
        tokens = {int(r): [t] for r, t in out.next_token_ids.items()}
        for step in range(11):
            freed = [4] if step == free_first_after else []
            if freed:
                slots = slots[1:]
            out = runner.execute(SchedulerOutput(decode_slots=slots, freed_slots=freed))
            for r, t in out.next_token_ids.items():
                tokens[int(r)].append(t)
        # Rows stay packed: slot 2's sequence (last row) moved into the row slot 4 left.
        assert runner.row_slots == ([4, 0, 2] if free_first_after is None else [2, 0])
        return tokens

    alone = run(None)
    after_leave = run(3)
    assert after_leave[0] == alone[0] and after_leave[2] == alone[2]
    assert len(after_leave[4]) == 4


def test_fresh_cache_rows_never_leak_garbage(tiny_t5_dir):
    """Cache memory is reserved uninitialised; a row is zeroed when first used. Poison the whole
    cache with NaN first: decoding must still give the tokens of a clean run."""
    generator = load_generator(tiny_t5_dir)
    prompts = [generator.tokenizer(text)["input_ids"] for text in ("Your report", "The onboarding guide is long")]
    params = SamplingParams(max_new_tokens=6, min_new_tokens=6)

    def run(fill: float) -> list[int]:
        runner = ModelRunner(generator, max_num_seqs=4, max_len=8, max_input_len=16)
        with torch.inference_mode():
            for buffer in runner.cache.buffers:
                buffer.fill_(fill)
        # b joins later with a longer input: each one's window now covers positions it never wrote.
        first = runner.execute(SchedulerOutput(prefill=[PrefillInput("a", 0, prompts[0], params)]))
        tokens = [first.next_token_ids["a"]]
        tokens.append(runner.execute(SchedulerOutput(decode_slots=[0])).next_token_ids["a"])
        runner.execute(SchedulerOutput(prefill=[PrefillInput("b", 1, prompts[1], params)], decode_slots=[0]))
        for _ in range(3):
            out = runner.execute(SchedulerOutput(decode_slots=[0, 1]))
            tokens += [out.next_token_ids["a"], out.next_token_ids["b"]]
        return tokens

    assert run(float("nan")) == run(0.0)
