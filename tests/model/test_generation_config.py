"""generation_config.json is read with Hugging Face's meaning and decoded as generate decodes it:
forced BOS/EOS, no-repeat n-grams, bad words, minimum length."""
from __future__ import annotations

import json
import shutil

import pytest
from transformers import AutoConfig, AutoModelForSeq2SeqLM

from benchmarks.offline_systems import BenchRequest, run_engine
from kernels.generation_config import read_generation_defaults
from kernels.loader import ModelLoadError, load_generator
from kernels.runner import ModelRunner
from scheduler.sampling_params import SamplingParams
from tests.model.test_kernels_t5 import MAX_NEW, prompts
from tests.model.test_families import hf_generate, request_params


def write_generation_config(path, **fields) -> None:
    (path / "generation_config.json").write_text(json.dumps(fields))


def engine_outputs(generator, params: list[SamplingParams], inputs) -> list[list[int]]:
    requests = [BenchRequest(ids, p.max_new_tokens, i % 3, p) for i, (ids, p) in enumerate(zip(inputs, params))]
    runner = ModelRunner(generator, max_num_seqs=4, max_len=64, max_input_len=64)
    return run_engine(runner, generator.tokenizer, generator.eos_token_id, requests, 4).outputs


def test_the_file_is_read_as_hugging_face_means_it(family_dir, tmp_path):
    config = AutoConfig.from_pretrained(family_dir("bart"))
    write_generation_config(tmp_path, max_length=142, min_length=56, no_repeat_ngram_size=3,
                            forced_bos_token_id=0, forced_eos_token_id=2, bad_words_ids=[[1], [7, 8]],
                            num_beams=4, length_penalty=2.0, early_stopping=True, decoder_start_token_id=2,
                            eos_token_id=2, suppress_tokens=[5], transformers_version="5.24.0")
    defaults = read_generation_defaults(tmp_path, config, vocab_size=400)
    # max_length and min_length count the decoder start token; the output does not.
    assert defaults.sampling == dict(max_new_tokens=141, min_new_tokens=55, no_repeat_ngram_size=3,
                                     forced_bos_token_id=0, forced_eos_token_ids=(2,),
                                     bad_words_ids=((1,), (7, 8)))
    assert defaults.beam == dict(num_beams=4, length_penalty=2.0, early_stopping=True)
    assert (defaults.decoder_start_token_id, defaults.eos_token_ids) == (2, (2,))
    assert defaults.ignored == ("suppress_tokens",)  # set, but not applied by this server

    write_generation_config(tmp_path, max_length=50, max_new_tokens=20, do_sample=True, temperature=0.7)
    defaults = read_generation_defaults(tmp_path, config)
    # max_new_tokens wins over max_length; sampling gets generate's top_k unless the file sets one.
    assert defaults.sampling == dict(max_new_tokens=20, top_k=50, temperature=0.7)
    SamplingParams(**defaults.sampling)  # every key is a SamplingParams field


@pytest.mark.parametrize("fields, field", [
    (dict(forced_bos_token_id=9999), "forced_bos_token_id 9999 is outside the model's vocabulary"),
    (dict(bad_words_ids=[[3], []]), "bad_words_ids"),
    (dict(max_length=1), "max_length 1 leaves no token"),
])
def test_a_bad_generation_config_is_a_load_error_naming_the_field(family_dir, tmp_path, fields, field):
    for path in family_dir("bart").iterdir():
        shutil.copy(path, tmp_path / path.name)
    write_generation_config(tmp_path, **fields)
    with pytest.raises(ModelLoadError, match="generation_config.json") as error:
        load_generator(tmp_path)
    assert field in str(error.value)


def test_without_the_file_the_legacy_config_fields_count_as_generate_counts_them(family_dir, tmp_path):
    for path in family_dir("bart").iterdir():
        if path.name != "generation_config.json":
            shutil.copy(path, tmp_path / path.name)
    generator = load_generator(tmp_path)
    assert generator.generation_defaults.sampling == dict(forced_eos_token_ids=(2,))  # BART's config.json
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    inputs = prompts(generator.tokenizer)
    params = [request_params(generator, max_new_tokens=n) for n in MAX_NEW]
    assert engine_outputs(generator, params, inputs) == [hf_generate(model, ids, n) for ids, n in zip(inputs, MAX_NEW)]


def test_forced_bos_no_repeat_ngrams_and_forced_eos_change_the_output_as_they_say(family_dir):
    path = family_dir("bart")  # forced BOS 0, forced EOS 2, no repeated trigram, min_length 4
    generator = load_generator(path)
    inputs = prompts(generator.tokenizer)
    with_config = engine_outputs(generator, [request_params(generator, max_new_tokens=n) for n in MAX_NEW], inputs)
    without = engine_outputs(generator, [SamplingParams(max_new_tokens=n) for n in MAX_NEW], inputs)
    assert with_config != without
    eos = generator.eos_token_id
    for output, n in zip(with_config, MAX_NEW):
        assert output[0] == 0  # forced BOS
        assert len(output) < n or output[-1] == eos  # forced EOS as the last allowed token
        assert len(output) >= 3  # min_length 4 counts the start token
        trigrams = list(zip(output, output[1:], output[2:]))
        assert len(trigrams) == len(set(trigrams))
    assert any(len(set(zip(o, o[1:], o[2:]))) < len(o) - 2 for o in without), "the control should repeat"


@pytest.mark.parametrize("family, language", [("mbart", "de_DE"), ("m2m_100", "fra_Latn")])
def test_the_target_language_is_forced_first(family_dir, family, language):
    generator = load_generator(family_dir(family))
    code = generator.tokenizer.convert_tokens_to_ids(language)
    outputs = engine_outputs(generator, [request_params(generator, max_new_tokens=n) for n in MAX_NEW],
                             prompts(generator.tokenizer))
    assert all(output[0] == code for output in outputs)
    assert all(code not in output[1:] for output in outputs)


def test_bad_words_of_several_tokens_are_never_completed_as_in_generate(family_dir):
    path = family_dir("marian-untied")
    generator = load_generator(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    inputs = prompts(generator.tokenizer)
    free = engine_outputs(generator, [SamplingParams(max_new_tokens=n) for n in MAX_NEW], inputs)
    pairs = [pair for output in free for pair in zip(output, output[1:])]
    banned = [list(max(set(pairs), key=pairs.count)), [free[0][0]]]  # the commonest pair; a first token
    params = [SamplingParams(max_new_tokens=n, bad_words_ids=tuple(map(tuple, banned))) for n in MAX_NEW]
    outputs = engine_outputs(generator, params, inputs)
    assert outputs == [hf_generate(model, ids, n, bad_words_ids=banned) for ids, n in zip(inputs, MAX_NEW)]
    assert all(tuple(banned[0]) not in set(zip(o, o[1:])) and banned[1][0] not in o for o in outputs)
    assert outputs != free
