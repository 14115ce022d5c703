"""How one generation request wants its tokens chosen. Values arrive already checked (the
HTTP edge validates requests, takeoff/schemas.py); this is plain data. The defaults here are
Takeoff's (`/generate` with no sampling fields): the edge takes them from this class."""
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
    # What a model's generation_config.json (or a request) asks of the decoder beyond sampling,
    # applied by the runner as Hugging Face's logits processors are, in their order
    # (kernels/sampling.py). Token ids are the model's; kernels/generation_config.py reads them.
    # decoder_prefix: tokens the output is forced to start with (a request's target_prefix, as
    # Hugging Face's decoder_input_ids after the start token); they are output tokens, so they
    # count toward max_new_tokens and min_new_tokens (as max_length/min_length count them).
    decoder_prefix: tuple[int, ...] = ()
    forced_bos_token_id: int | None = None  # the first output token, when there is no prefix
    forced_eos_token_ids: tuple[int, ...] = ()  # one of them is the max_new_tokens-th token
    bad_words_ids: tuple[tuple[int, ...], ...] = ()  # token sequences the output never completes

    @property
    def is_greedy(self) -> bool:
        return self.top_k == 1 or self.temperature == 0.0
