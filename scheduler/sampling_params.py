"""How one generation request wants its tokens chosen. Values arrive already checked (the
HTTP edge validates requests, takeoff/schemas.py); this is plain data, except that the beam
block refuses combinations the engine cannot run (a ValueError naming the field). The defaults
here are Takeoff's (`/generate` with no sampling fields): the edge takes them from this class."""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 128
    min_new_tokens: int = 0  # EOS is suppressed until this many tokens exist
    temperature: float = 1.0
    top_k: int = 1  # 1 means greedy (Takeoff's default); 0 means no top-k filter
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    seed: int | None = None  # same seed -> same tokens, alone or in any batch
    stop: tuple[str, ...] = field(default_factory=tuple)  # matched on decoded text
    # Constrained decoding: the output must match this regex, or this JSON schema (given as JSON
    # text, so the params stay hashable). At most one; only kernels/constrained.py reads them.
    regex: str | None = None
    json_schema: str | None = None
    # Beam search (scheduler/beams.py): Hugging Face generate(num_beams=...) semantics. A request
    # with num_beams > 1 holds that many KV slots and keeps that many hypotheses; it decodes
    # greedily (beam sampling is not implemented) and its text comes back when it ends.
    num_beams: int = 1
    length_penalty: float = 1.0  # a finished hypothesis scores sum(log p) / num_tokens ** this
    early_stopping: bool | str = False  # True, False or "never", as Hugging Face's
    num_return_sequences: int = 1  # the best this many hypotheses come back, 1..num_beams

    def __post_init__(self) -> None:
        if type(self.num_beams) is not int or self.num_beams < 1:
            raise ValueError(f"num_beams must be an integer of at least 1, not {self.num_beams!r}")
        if not 1 <= self.num_return_sequences <= self.num_beams:
            raise ValueError(f"num_return_sequences must be 1..num_beams ({self.num_beams}), "
                             f"not {self.num_return_sequences!r}")
        if not (isinstance(self.early_stopping, bool) or self.early_stopping == "never"):
            raise ValueError(f"early_stopping must be true, false or \"never\", not {self.early_stopping!r}")
        if not math.isfinite(self.length_penalty):
            raise ValueError(f"length_penalty must be a finite number, not {self.length_penalty!r}")
        if self.is_beam_search and not self.is_greedy:
            raise ValueError("num_beams > 1 decodes greedily: beam sampling (top_k other than 1 "
                             "with a temperature above 0) is not supported")

    @property
    def is_greedy(self) -> bool:
        return self.top_k == 1 or self.temperature == 0.0

    @property
    def is_beam_search(self) -> bool:
        return self.num_beams > 1
