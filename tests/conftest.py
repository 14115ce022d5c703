"""Shared fixtures: tiny random models saved once per session."""
from __future__ import annotations

import pytest

from tests.tiny_models import save_tiny_classifier, save_tiny_t5


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory):
    return save_tiny_t5(tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny-classifier"))
