"""How one generation request wants its tokens chosen.

`SamplingParams` is the resolved, plain data a request carries into the scheduler and the
kernels; its defaults are Takeoff's (`/generate` with no sampling fields). It refuses only what
no layer may ask for (a beam setting the engine cannot run), with a SamplingError naming the
field.

`SamplingRequest` is what a front end hands the engine before the reader is known: three layers
of SamplingParams fields, each over the one before, resolved once the reader is picked:
  1. `defaults`: the API's own (Takeoff's are SamplingParams'; OpenAI's differ),
  2. the reader's defaults (`Reader.sampling_defaults`: its model's generation_config.json),
  3. `explicit`: the fields the client set (pydantic's `model_fields_set`).
The reader's caps (new tokens, beams) clamp a value that came from a default layer; one the
client set above a cap is an error, as is a min_new_tokens above the resolved maximum. A beam
search decodes greedily unless the client set a sampling field (a default temperature is not a
request to sample), and beam sampling is an error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping


class SamplingError(ValueError):
    """A request whose sampling fields contradict each other or the server's cap; `field` is
    the name the client used for the field at fault (quoted in the message)."""

    def __init__(self, message: str, field_name: str) -> None:
        super().__init__(message)
        self.field = field_name

    def renamed(self, names: Mapping[str, str]) -> SamplingError:
        """The same error in the client's names (SamplingParams name -> the client's)."""
        message = str(self)
        for name, client_name in names.items():
            message = message.replace(f"'{name}'", f"'{client_name}'")
        return SamplingError(message, names.get(self.field, self.field))


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
            raise SamplingError(f"'num_beams' must be an integer of at least 1, not "
                                f"{self.num_beams!r}", "num_beams")
        if not 1 <= self.num_return_sequences <= self.num_beams:
            raise SamplingError(f"'num_return_sequences' must be 1..'num_beams' ({self.num_beams}), "
                                f"not {self.num_return_sequences!r}", "num_return_sequences")
        if not (isinstance(self.early_stopping, bool) or self.early_stopping == "never"):
            raise SamplingError(f"'early_stopping' must be true, false or \"never\", not "
                                f"{self.early_stopping!r}", "early_stopping")
        if not math.isfinite(self.length_penalty):
            raise SamplingError(f"'length_penalty' must be a finite number, not "
                                f"{self.length_penalty!r}", "length_penalty")
        if self.is_beam_search and not self.is_greedy:
            raise SamplingError("'num_beams' above 1 decodes greedily: beam sampling ('temperature' "
                                "above 0 with 'top_k' other than 1) is not supported", "num_beams")

    @property
    def is_greedy(self) -> bool:
        return self.top_k == 1 or self.temperature == 0.0

    @property
    def is_beam_search(self) -> bool:
        return self.num_beams > 1


FIELD_NAMES = frozenset(f.name for f in fields(SamplingParams))
SAMPLING_FIELDS = frozenset({"temperature", "top_k", "top_p"})  # what makes a request sample



@dataclass(frozen=True)
class SamplingRequest:
    """A request's sampling in layers (SamplingParams field names throughout; see above)."""
    explicit: Mapping[str, Any] = field(default_factory=dict)  # what the client set
    defaults: Mapping[str, Any] = field(default_factory=dict)  # the API's, over SamplingParams'
    # SamplingParams field -> the client's name for it, for errors ("max_new_tokens": "max_tokens")
    names: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = (set(self.explicit) | set(self.defaults)) - FIELD_NAMES
        if unknown:
            raise ValueError(f"not SamplingParams fields: {sorted(unknown)}")

    @classmethod
    def fixed(cls, params: SamplingParams) -> SamplingRequest:
        """Every field as `params` has it, as if the client had set them all."""
        return cls({name: getattr(params, name) for name in FIELD_NAMES})

    def resolve(self, reader_defaults: Mapping[str, Any], max_new_tokens: int,
                beam_limit: tuple[int, str] | None = None) -> SamplingParams:
        """The request's SamplingParams on a reader with these defaults, this cap on new tokens
        (a default of None means the cap) and `beam_limit`: (the most beams, why; None: no
        limit). Raises SamplingError in the client's names."""
        values = {**self.defaults, **reader_defaults, **self.explicit}
        try:
            self._cap(values, "max_new_tokens", max_new_tokens, "on this server")
            if beam_limit is not None and "num_beams" in values:
                self._cap(values, "num_beams", *beam_limit)
            if values.get("num_beams", 1) > 1:
                self._beam_defaults(values)
            params = SamplingParams(**values)
        except SamplingError as exc:
            raise exc.renamed(self.names) from None
        if params.min_new_tokens > params.max_new_tokens:
            raise SamplingError(f"'{self.name('min_new_tokens')}' must be at most "
                                f"{self.name('max_new_tokens')} ({params.max_new_tokens})",
                                self.name("min_new_tokens"))
        return params

    def _cap(self, values: dict[str, Any], name: str, cap: int, why: str) -> None:
        """Lower a default above `cap` (or None) to it; refuse the client's above it."""
        wanted = values.get(name)
        if name in self.explicit and wanted > cap:
            raise SamplingError(f"'{name}' must be at most {cap} {why}", name)
        if wanted is None or wanted > cap:
            values[name] = cap

    def _beam_defaults(self, values: dict[str, Any]) -> None:
        """A beam search from the default layers' point of view: it decodes greedily unless the
        client set a sampling field, and returns at most num_beams sequences."""
        if not SAMPLING_FIELDS & self.explicit.keys():
            values["top_k"] = 1
        if "num_return_sequences" not in self.explicit:
            values["num_return_sequences"] = min(values.get("num_return_sequences", 1),
                                                 values["num_beams"])

    def name(self, field_name: str) -> str:
        """The client's name for a SamplingParams field."""
        return self.names.get(field_name, field_name)
