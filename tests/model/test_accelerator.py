"""The equality checks again on every accelerator this machine has (CUDA when present).

tests/model/conftest.py leaves this module uncollected on a machine without CUDA (nothing is
skipped); the CPU equality checks live in test_kernels_t5.py and test_kernels_classifier.py.
"""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, T5ForConditionalGeneration

from kernels.classifier import classify, encode_texts
from kernels.loader import load_classifier, load_generator
from tests.model.test_kernels_classifier import TEXTS
from tests.model.test_kernels_t5 import MAX_NEW, full_forward_greedy, prompts, run_batch

ACCELERATORS = ["cuda"]  # collected only when CUDA is present (see conftest.py)


@pytest.mark.parametrize("device", ACCELERATORS)
@pytest.mark.parametrize("shape", ["relu-tied", "gated-gelu-untied", "deep-decoder"])
def test_greedy_batch_on_accelerator_matches_reference(tiny_t5_shape_dir, shape, device):
    path = tiny_t5_shape_dir(shape)
    generator = load_generator(path, device=device)
    model = T5ForConditionalGeneration.from_pretrained(path).eval().to(device)
    inputs = prompts(generator.tokenizer)
    outputs, _ = run_batch(generator, inputs)
    # The reference recomputes the whole decoder each token on the same device.
    expected = [full_forward_greedy(model, ids, n, device) for ids, n in zip(inputs, MAX_NEW)]
    assert outputs == expected


@pytest.mark.parametrize("device", ACCELERATORS)
def test_classifier_on_accelerator_matches_cpu_reference(tiny_classifier_dir, device):
    model = load_classifier(tiny_classifier_dir, device=device)
    reference = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir).eval()
    rows = classify(model, encode_texts(model, TEXTS))
    for text, row in zip(TEXTS, rows):
        first, second = (text, None) if isinstance(text, str) else text
        batch = model.tokenizer(first, second, truncation=True, max_length=64, return_tensors="pt")
        with torch.inference_mode():
            expected = reference(**batch).logits.softmax(-1)[0].tolist()
        assert row == pytest.approx(expected, abs=1e-4)

