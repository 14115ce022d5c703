"""The few shapes the models' oneDNN kernels run at, so that memory stays flat under any mix of
input lengths and batch sizes.

On the CPU, oneDNN compiles a primitive (JIT code) for every new shape of a linear layer (and of
an exact GELU) and keeps it in a cache of 1024; each new row count of a bf16 linear of the demo
models held on to 0.5-0.8 MB, and one of the classifier's GELU 0.35 MB, so a server fed every
length and batch size kept growing for hours, in steps, as rare shapes came in (and past 1024
shapes, evicted and recompiled ones fragment the heap: RSS grew even with the cache off).
Inputs are right-padded to a multiple of LENGTH_STEP tokens (attention masks make the padding
exact), and a linear's rows to one of a few counts per octave (rows are independent: the padded
product's rows are bit-identical to the unpadded one's), which leaves a bounded set of shapes
that the first minutes compile.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from transformers.activations import GELUActivation

LENGTH_STEP = 16
# Row counts up to this run as they are (decode steps: one row per sequence); above it they are
# rounded up to one of 2 ** ROWS_PER_OCTAVE_LOG2 counts per octave (<= 25% more rows, 12.5%
# from 32 rows), and a linear runs more than MAX_ROWS_PER_CALL rows (prefill and classifier
# batches: batch x width) in calls of that many: 32 row counts in all, every one of them common,
# where rare large counts (a 7-minute soak still met new ones at minute 4) each grew memory.
EXACT_ROWS = 16
ROWS_PER_OCTAVE_LOG2 = 2
MAX_ROWS_PER_CALL = 256


def padded_length(length: int, limit: int) -> int:
    """`length` rounded up to a multiple of LENGTH_STEP, but never past `limit` (the model's
    longest input)."""
    return min(-(-length // LENGTH_STEP) * LENGTH_STEP, limit)


def padded_rows(num_rows: int) -> int:
    """The row count a linear layer runs `num_rows` rows (<= MAX_ROWS_PER_CALL) at: 17 -> 20,
    100 -> 112, 250 -> 256."""
    if num_rows <= EXACT_ROWS:
        return num_rows
    step = 1 << (num_rows.bit_length() - 1 - ROWS_PER_OCTAVE_LOG2)
    return -(-num_rows // step) * step


def exact_gelu_off_onednn(model: torch.nn.Module) -> torch.nn.Module:
    """The exact GELUs of a Hugging Face model (BERT's, ELECTRA's) computed by `erf_gelu`; in
    place. Their F.gelu hands every contiguous float or bf16 input to oneDNN, whose kernel is
    compiled per [batch, width, features] shape and never bounded by the row padding above."""
    for module in model.modules():
        if isinstance(module, GELUActivation) and module.act is F.gelu:
            module.act = erf_gelu
    return model


def erf_gelu(x: torch.Tensor) -> torch.Tensor:
    """0.5 * x * (1 + erf(x / sqrt(2))) in float32, by ATen's elementwise kernels (no oneDNN)."""
    wide = x.float()
    return (wide * 0.5 * (1.0 + torch.erf(wide * (1 / math.sqrt(2))))).to(x.dtype)
