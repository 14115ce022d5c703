"""Shared fixtures: tiny random models saved once per session."""
from __future__ import annotations

import pytest

from tests.tiny_models import T5_SHAPES, save_tiny_classifier, save_tiny_t5


@pytest.fixture(scope="session")
def tiny_t5_shape_dir(tmp_path_factory):
    """tiny_t5_shape_dir(shape) -> directory of the tiny T5 of that shape, built once per session."""
    built = {}

    def build(shape: str):
        if shape not in built:
            assert shape in T5_SHAPES, shape
            built[shape] = save_tiny_t5(tmp_path_factory.mktemp(f"tiny-t5-{shape}"), shape)
        return built[shape]

    return build


@pytest.fixture(scope="session")
def tiny_t5_dir(tiny_t5_shape_dir):
    return tiny_t5_shape_dir("gated-gelu-untied")


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny-classifier"))
