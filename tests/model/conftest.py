"""Tiny models run fastest on one thread: their ops are too small to split, and on a busy
machine extra threads only wait on each other."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num_threads)


# test_accelerator.py repeats the equality checks on CUDA; with no GPU it has nothing to run, so it
# is not collected at all (rather than reported as skipped).
collect_ignore = [] if torch.cuda.is_available() else ["test_accelerator.py"]
