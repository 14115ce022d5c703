"""Batched classification equals the Hugging Face forward of each sentence alone, whatever the
width its batch is padded to."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from kernels.classifier import classify, encode_texts
from kernels.loader import load_classifier
from kernels.runner import ModelRunner
from kernels.shapes import LENGTH_STEP
from scheduler.output import OnePassInput, SchedulerOutput
from takeoff.feedback.task import LABELS
from tests.tiny_models import CORPUS, save_tiny_classifier

TEXTS = CORPUS[:6] + [("The report was late.", "Could you send it by Friday?"), "ok"]


def hf_probabilities(path, tokenizer, text) -> list[float]:
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    first, second = (text, None) if isinstance(text, str) else text
    batch = tokenizer(first, second, truncation=True, max_length=64, return_tensors="pt",
                      return_token_type_ids=model.config.type_vocab_size > 1)
    with torch.inference_mode():
        return model(**batch).logits.float().softmax(-1)[0].tolist()


@pytest.fixture(scope="module", params=["electra", "bert", "roberta"])
def classifier_dir(request, tiny_classifier_dir, tmp_path_factory):
    if request.param == "electra":
        return tiny_classifier_dir
    return save_tiny_classifier(tmp_path_factory.mktemp(request.param), family=request.param)


def test_batched_probabilities_match_each_sentence_alone(classifier_dir):
    model = load_classifier(classifier_dir)
    assert model.labels == list(LABELS)
    encoded = encode_texts(model, TEXTS)
    assert len({len(ids) for ids, _ in encoded}) > 3  # real padding in the batch
    batched = classify(model, encoded)
    for text, enc, row in zip(TEXTS, encoded, batched):
        expected = hf_probabilities(classifier_dir, model.tokenizer, text)
        assert classify(model, [enc])[0] == pytest.approx(expected, abs=1e-5)
        assert row == pytest.approx(expected, abs=1e-5)
        assert sum(row) == pytest.approx(1.0, abs=1e-5)


def test_padding_to_a_few_widths_leaves_probabilities_unchanged(classifier_dir):
    """A short input in batches padded to ever wider widths (each a multiple of LENGTH_STEP, the
    few shapes that keep memory flat) gets the probabilities of its unpadded forward in float32."""
    model = load_classifier(classifier_dir)
    text = next(t for t in CORPUS if len(encode_texts(model, [t])[0][0]) % LENGTH_STEP)
    (ids, types), = encode_texts(model, [text])
    expected = hf_probabilities(classifier_dir, model.tokenizer, text)
    widths = []
    model.model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    companion_lengths = (len(ids), 20, 33, 50, model.max_input_len)
    for companion_len in companion_lengths:
        companion = ids[:1] + ids[1:2] * (companion_len - 2) + ids[-1:]
        row = classify(model, [(ids, types), (companion, None)])[0]
        assert row == pytest.approx(expected, abs=1e-5)
    # the model ran at widths rounded up to LENGTH_STEP (or its limit), even for the input alone
    assert widths == [min(-(-n // LENGTH_STEP) * LENGTH_STEP, model.max_input_len)
                      for n in companion_lengths]
    assert widths[0] > len(ids) and len(set(widths)) >= 3


def test_pair_segments_matter_and_long_inputs_are_cut(tiny_classifier_dir):
    model = load_classifier(tiny_classifier_dir)
    (pair_ids, pair_types), = encode_texts(model, [("The report was late.", "Send it by Friday.")])
    assert set(pair_types) == {0, 1}
    with_types, without_types = classify(model, [(pair_ids, pair_types), (pair_ids, None)])
    assert with_types != pytest.approx(without_types, abs=1e-6)

    long_ids = [pair_ids[0]] + pair_ids[1:-1] * 20 + [pair_ids[-1]]
    assert len(long_ids) > model.max_input_len
    cut = long_ids[:model.max_input_len - 1] + long_ids[-1:]
    assert classify(model, [(long_ids, None)]) == classify(model, [(cut, None)])


def test_runner_classifies_alongside_generation(tiny_classifier_dir, tiny_t5_dir):
    from kernels.loader import load_generator
    from scheduler.output import PrefillInput
    from scheduler.sampling_params import SamplingParams

    classifier = load_classifier(tiny_classifier_dir)
    generator = load_generator(tiny_t5_dir)
    runner = ModelRunner(generator, classifier, max_num_seqs=2, max_len=16, max_input_len=32)
    (ids, types), = encode_texts(classifier, [CORPUS[0]])
    prompt = generator.tokenizer(CORPUS[1])["input_ids"][:20]
    out = runner.execute(SchedulerOutput(one_pass=[OnePassInput("c", ids, types)],
                                         prefill=[PrefillInput("g", 1, prompt, SamplingParams(max_new_tokens=8))]))
    assert out.probabilities["c"] == pytest.approx(classify(classifier, [(ids, types)])[0], abs=1e-6)
    assert list(out.next_token_ids) == ["g"]
    assert set(out.step_seconds) == {"classify", "prefill"}
