"""Constrained decoding: every output matches its regex or parses under its JSON schema, greedy or
sampled, while the unconstrained sequences beside it keep Hugging Face's greedy tokens."""
from __future__ import annotations

import json
import re

import pytest
import torch
from transformers import AutoTokenizer, T5ForConditionalGeneration

from benchmarks.offline_systems import BenchRequest, run_engine
from kernels.constrained import GrammarCompiler, GrammarError, mask_logits
from kernels.loader import load_generator
from kernels.runner import ModelRunner
from kernels.sampling import SlotState, choose_tokens
from kernels.vocabulary import token_vocabulary
from scheduler.output import PrefillInput, SchedulerOutput
from scheduler.sampling_params import SamplingParams
from tests.model.test_kernels_t5 import hf_greedy, prompts
from tests.tiny_models import build_t5_sentencepiece_tokenizer, build_t5_tokenizer, save_tiny_t5

REGEX = r"[0-9]{3}-[a-z]{2,8}"
LABELS = ["praise", "criticism", "question"]
SCHEMA = json.dumps({"type": "object", "properties": {
    "label": {"enum": LABELS},
    "score": {"type": "integer", "minimum": 0, "maximum": 100},
    "note": {"type": "string", "maxLength": 12}},
    "required": ["label", "score", "note"], "additionalProperties": False})
# T5's vocabulary has no braces (nor the tiny SentencePiece one): its JSON can be a quoted enum.
ENUM_SCHEMA = json.dumps({"enum": LABELS})
MAX_NEW = 120  # enough for the longest output either pattern allows, one byte per token


@pytest.fixture(scope="module")
def sentencepiece_t5_dir(tmp_path_factory):
    """A T5 with a SentencePiece-style vocabulary and 13 embedding rows past it, as T5's 32,128."""
    return save_tiny_t5(tmp_path_factory.mktemp("tiny-t5-sp"), sentencepiece=True, vocab_padding=13)


def obeys_schema(text: str, schema: str) -> bool:
    value = json.loads(text)
    if schema == ENUM_SCHEMA:
        return value in LABELS
    return (set(value) == {"label", "score", "note"} and value["label"] in LABELS
            and type(value["score"]) is int and 0 <= value["score"] <= 100
            and isinstance(value["note"], str) and len(value["note"]) <= 12)


def generate(generator, params: list[SamplingParams]) -> list[list[int]]:
    """Run each request through the scheduler and runner in one batch; staggered arrivals."""
    inputs = prompts(generator.tokenizer)
    requests = [BenchRequest(inputs[i % len(inputs)], p.max_new_tokens, i % 3, p) for i, p in enumerate(params)]
    runner = ModelRunner(generator, max_num_seqs=4, max_len=MAX_NEW, max_input_len=64)
    return run_engine(runner, generator.tokenizer, generator.eos_token_id, requests, 4).outputs


@pytest.mark.parametrize("sentencepiece, schema", [(False, SCHEMA), (True, ENUM_SCHEMA)],
                         ids=["byte-bpe", "sentencepiece"])
def test_constrained_outputs_match_and_the_rest_equal_hugging_face(tiny_t5_dir, sentencepiece_t5_dir,
                                                                  sentencepiece, schema):
    path = sentencepiece_t5_dir if sentencepiece else tiny_t5_dir
    generator = load_generator(path)
    free = SamplingParams(max_new_tokens=16)
    constrained = [SamplingParams(max_new_tokens=MAX_NEW, regex=REGEX),
                   SamplingParams(max_new_tokens=MAX_NEW, json_schema=schema)]
    sampled = [SamplingParams(max_new_tokens=MAX_NEW, top_k=0, temperature=1.5, seed=seed, **pattern)
               for seed in range(4) for pattern in ({"regex": REGEX}, {"json_schema": schema})]
    params = [free, constrained[0], free, constrained[1], *sampled, free]
    outputs = generate(generator, params)

    model = T5ForConditionalGeneration.from_pretrained(path).eval()
    inputs = prompts(generator.tokenizer)
    for i, (p, ids) in enumerate(zip(params, outputs)):
        if p.regex is None and p.json_schema is None:
            assert ids == hf_greedy(model, inputs[i % len(inputs)], 16), i
            continue
        assert ids[-1] == generator.eos_token_id, "a constrained output ends by completing its pattern"
        text = generator.tokenizer.decode(ids, skip_special_tokens=True)
        if p.regex is not None:
            assert re.fullmatch(REGEX, text), (i, text)
        else:
            assert obeys_schema(text, schema), (i, text)
    texts = {generator.tokenizer.decode(ids) for p, ids in zip(params, outputs) if p.regex}
    assert len(texts) > 2, "sampled outputs should differ"


def test_grammar_outranks_min_new_tokens_and_no_repeat(tiny_t5_dir):
    generator = load_generator(tiny_t5_dir)
    params = SamplingParams(max_new_tokens=30, min_new_tokens=25, no_repeat_ngram_size=1, regex="(ab){3}")
    ids = generate(generator, [params])[0]
    assert generator.tokenizer.decode(ids, skip_special_tokens=True) == "ababab"
    assert ids[-1] == generator.eos_token_id


def test_padded_vocabulary_ids_are_never_chosen(sentencepiece_t5_dir):
    generator = load_generator(sentencepiece_t5_dir)
    num_tokens = len(generator.tokenizer)
    assert generator.config.vocab_size == num_tokens + 13
    matcher = GrammarCompiler.for_model(generator).matcher(regex="[a-z]+")
    logits = torch.zeros(2, generator.config.vocab_size)
    logits[:, num_tokens:] = 100.0  # the padding rows would win
    state = SlotState("r", SamplingParams(), 1, [0], matcher=matcher)
    free = SlotState("f", SamplingParams(), 1, [0])
    tokens = choose_tokens(logits, [free, state], generator.eos_token_id)
    assert tokens[0] >= num_tokens, "an unconstrained row is left alone"
    assert tokens[1] < num_tokens and matcher.allowed()[tokens[1]]


def test_masks_allow_no_special_token_but_eos_at_the_end():
    tokenizer = build_t5_tokenizer()
    matcher = GrammarCompiler(tokenizer, tokenizer.eos_token_id, len(tokenizer)).matcher(regex="[0-9]{2}")
    specials = [tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id]
    for token in tokenizer("42", add_special_tokens=False)["input_ids"]:
        assert not matcher.allowed()[specials].any()
        matcher.advance(token)
    assert matcher.is_finished and matcher.only_eos_allowed


def test_first_space_that_t5_drops_is_written_by_the_first_token():
    tokenizer = build_t5_sentencepiece_tokenizer()
    matcher = GrammarCompiler(tokenizer, 1, len(tokenizer)).matcher(regex="[a-z]+")
    first = [tokenizer.convert_ids_to_tokens(i) for i in matcher.allowed().nonzero().flatten().tolist()]
    assert first and all(piece.startswith("\u2581") for piece in first), first
    assert "\u2581the" in first  # " the", printed as "the" when it comes first


def test_vocabulary_texts_are_what_decode_prints():
    rewriter = AutoTokenizer.from_pretrained("models/feedback-rewriter")  # literal <0xNN> pieces
    for tokenizer, drops in [(build_t5_tokenizer(), False), (build_t5_sentencepiece_tokenizer(), True),
                             (rewriter, True)]:
        vocab = token_vocabulary(tokenizer, tokenizer.eos_token_id)
        assert vocab.drops_first_space is drops
        before = tokenizer("the", add_special_tokens=False)["input_ids"][:1]
        shown = tokenizer.decode(before)
        for token_id in range(len(tokenizer)):
            if token_id in vocab.special_ids:
                assert vocab.texts[token_id] == b""
                continue
            text = tokenizer.decode(before + [token_id])[len(shown):]
            if "\ufffd" not in text:  # one byte of a longer character decodes alone as U+FFFD
                assert vocab.texts[token_id] == text.encode(), (token_id, text)


@pytest.mark.parametrize("pattern, message", [
    ({"regex": "[0-9]{3"}, "regex_string cannot be compiled"),
    ({"json_schema": "{"}, "json_schema is not valid JSON"),
    ({"json_schema": '{"type": "foo"}'}, "json_schema cannot be compiled"),
    ({"json_schema": "[1, 2]"}, "json_schema must be a JSON object"),
    ({"regex": "a", "json_schema": "{}"}, "exactly one"),
])
def test_bad_patterns_raise_grammar_error(pattern, message):
    tokenizer = build_t5_tokenizer()
    with pytest.raises(GrammarError, match=message):
        GrammarCompiler(tokenizer, 1, len(tokenizer)).compile(**pattern)


def test_patterns_the_vocabulary_cannot_write_raise_grammar_error():
    tokenizer = build_t5_sentencepiece_tokenizer()  # as T5's: no braces
    compiler = GrammarCompiler(tokenizer, 1, len(tokenizer))
    with pytest.raises(GrammarError, match=r"cannot write .* json_schema \(no token writes \{ \}"):
        compiler.compile(json_schema=SCHEMA)
    with pytest.raises(GrammarError, match="cannot write"):
        compiler.compile(regex=r"a\{[0-9]\}")
    compiler.compile(regex=REGEX)  # digits, '-' and letters it has


def test_a_dead_end_met_while_decoding_ends_the_sequence(sentencepiece_t5_dir):
    """[a-z]{3}Q is too wide for the compile-time check, but no token writes 'Q'."""
    generator = load_generator(sentencepiece_t5_dir)
    runner = ModelRunner(generator, max_num_seqs=2, max_len=16, max_input_len=64)
    params = SamplingParams(max_new_tokens=16, regex="[a-z]{3}Q")
    prompt = prompts(generator.tokenizer)[0]
    tokens = [runner.execute(SchedulerOutput(prefill=[PrefillInput("a", 0, prompt, params)])).next_token_ids["a"]]
    while tokens[-1] != generator.eos_token_id and len(tokens) < 16:
        tokens.append(runner.execute(SchedulerOutput(decode_slots=[0])).next_token_ids["a"])
    assert tokens[-1] == generator.eos_token_id and len(tokens) <= 5
    assert runner.slots[0].matcher.error is not None


def test_mask_logits_leaves_other_rows_alone():
    tokenizer = build_t5_tokenizer()
    matcher = GrammarCompiler(tokenizer, 1, len(tokenizer)).matcher(regex="[0-9]")
    logits = torch.randn(3, len(tokenizer))
    before = logits.clone()
    mask_logits(logits, [1], [matcher])
    assert torch.equal(logits[[0, 2]], before[[0, 2]])
    kept = torch.isfinite(logits[1]).nonzero().flatten().tolist()
    assert sorted(tokenizer.decode([i]) for i in kept) == list("0123456789")
