"""How one generation request wants its tokens chosen."""
from __future__ import annotations

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

    @property
    def is_greedy(self) -> bool:
        return self.top_k == 1 or self.temperature == 0.0

    def validate(self) -> None:
        """Raise ValueError with a user-facing message for a parameter out of range."""
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError("min_new_tokens must be between 0 and max_new_tokens")
        if self.temperature < 0:
            raise ValueError("sampling_temperature must be >= 0")
        if self.top_k < 0:
            raise ValueError("sampling_topk must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("sampling_topp must be in (0, 1]")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be > 0")
        if self.no_repeat_ngram_size < 0:
            raise ValueError("no_repeat_ngram_size must be >= 0")
        if any(not s for s in self.stop):
            raise ValueError("stop sequences must be non-empty strings")
        if self.regex is not None and self.json_schema is not None:
            raise ValueError("give regex_string or json_schema, not both")
