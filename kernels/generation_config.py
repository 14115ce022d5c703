"""How a model's authors decode it (generation_config.json), and a request's target prefix.

`read_generation_defaults` gives what the file sets as SamplingParams field values, with Hugging
Face's meaning: for an encoder-decoder, max_length and min_length count the decoder start token,
so max_new_tokens = max_length - 1. A directory without the file gets what Hugging Face would
take from config.json instead (GenerationConfig.from_model_config). `target_prefix_ids` turns a
target prefix into the decoder tokens the output starts with (SamplingParams.decoder_prefix).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernels.errors import ModelLoadError

GENERATION_CONFIG = "generation_config.json"
# Fields that say nothing about how tokens are chosen (or that the loader reads elsewhere).
NOT_DECODING = {"_from_model_config", "transformers_version", "output_attentions", "output_hidden_states",
                "output_scores", "output_logits", "return_dict_in_generate", "use_cache", "pad_token_id",
                "bos_token_id", "eos_token_id", "decoder_start_token_id", "max_length", "min_length",
                "max_new_tokens", "min_new_tokens", "do_sample", "temperature", "top_k", "top_p"}
SAMPLING_FIELDS = ("repetition_penalty", "no_repeat_ngram_size")
BEAM_FIELDS = ("num_beams", "length_penalty", "early_stopping")
HF_TOP_K = 50  # generate's top_k when sampling and the file sets none


@dataclass(frozen=True)
class GenerationDefaults:
    """What a model's generation config sets, split by who applies it."""
    sampling: dict[str, Any] = field(default_factory=dict)  # SamplingParams field -> value
    beam: dict[str, Any] = field(default_factory=dict)  # num_beams, length_penalty, early_stopping
    decoder_start_token_id: int | None = None  # else bos_token_id, as generate falls back
    eos_token_ids: tuple[int, ...] = ()
    ignored: tuple[str, ...] = ()  # fields it sets that this server does not apply


def read_generation_defaults(path, config, vocab_size: int | None = None) -> GenerationDefaults:
    """The defaults of the model at `path` (its transformers `config` for the fallback); token
    ids are checked against `vocab_size` when given. Raises ModelLoadError naming the field."""
    from transformers import GenerationConfig

    file = Path(path) / GENERATION_CONFIG
    try:
        if file.is_file():
            keys = set(json.loads(file.read_text()))
            generation = GenerationConfig.from_pretrained(path, local_files_only=True)
        else:
            generation = GenerationConfig.from_model_config(config)
            keys = set(generation.to_diff_dict())
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"{file} is not a generation config transformers can read: {exc}") from None
    values = {key: getattr(generation, key, None) for key in keys}
    values = {key: value for key, value in values.items() if value is not None}
    defaults = GenerationDefaults(
        sampling=_sampling(values, file), beam={k: values[k] for k in BEAM_FIELDS if k in values},
        decoder_start_token_id=values.get("decoder_start_token_id", values.get("bos_token_id")),
        eos_token_ids=_ids(values.get("eos_token_id"), file, "eos_token_id"),
        ignored=tuple(sorted(keys - NOT_DECODING - set(SAMPLING_FIELDS) - set(BEAM_FIELDS)
                             - {"bad_words_ids", "forced_bos_token_id", "forced_eos_token_id"})))
    if vocab_size is not None:
        _check_vocabulary(defaults, vocab_size, file)
    return defaults


def _sampling(values: dict[str, Any], file: Path) -> dict[str, Any]:
    sampling: dict[str, Any] = {}
    if "max_new_tokens" in values:
        sampling["max_new_tokens"] = values["max_new_tokens"]
    elif "max_length" in values:  # counts the decoder start token
        sampling["max_new_tokens"] = values["max_length"] - 1
    if "min_new_tokens" in values:
        sampling["min_new_tokens"] = values["min_new_tokens"]
    elif "min_length" in values:
        sampling["min_new_tokens"] = max(0, values["min_length"] - 1)
    if sampling.get("max_new_tokens", 1) < 1:
        raise ModelLoadError(f"{file}: max_length {values.get('max_length')} leaves no token to generate")
    if values.get("do_sample"):
        sampling["top_k"] = values.get("top_k", HF_TOP_K)
        sampling.update({k: values[k] for k in ("temperature", "top_p") if k in values})
    sampling.update({k: values[k] for k in SAMPLING_FIELDS if k in values})
    if "bad_words_ids" in values:
        words = values["bad_words_ids"]
        if not isinstance(words, list) or not all(isinstance(w, list) and w for w in words):
            raise ModelLoadError(f"{file}: bad_words_ids must be a list of token id lists, not {words!r}")
        sampling["bad_words_ids"] = tuple(_ids(w, file, "bad_words_ids") for w in words)
    if "forced_bos_token_id" in values:
        sampling["forced_bos_token_id"] = _ids(values["forced_bos_token_id"], file, "forced_bos_token_id")[0]
    if "forced_eos_token_id" in values:
        sampling["forced_eos_token_ids"] = _ids(values["forced_eos_token_id"], file, "forced_eos_token_id")
    return sampling


def _ids(value, file: Path, name: str) -> tuple[int, ...]:
    ids = tuple(value) if isinstance(value, (list, tuple)) else (() if value is None else (value,))
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise ModelLoadError(f"{file}: {name} must be token ids (integers >= 0), not {value!r}")
    return ids


def _check_vocabulary(defaults: GenerationDefaults, vocab_size: int, file: Path) -> None:
    named = {"decoder_start_token_id": (defaults.decoder_start_token_id,),
             "eos_token_id": defaults.eos_token_ids,
             "forced_bos_token_id": (defaults.sampling.get("forced_bos_token_id"),),
             "forced_eos_token_id": defaults.sampling.get("forced_eos_token_ids", ()),
             "bad_words_ids": sum(defaults.sampling.get("bad_words_ids", ()), ())}
    for name, ids in named.items():
        outside = [i for i in ids if i is not None and i >= vocab_size]
        if outside:
            raise ModelLoadError(f"{file}: {name} {outside[0]} is outside the model's vocabulary "
                                 f"of {vocab_size} tokens")


class TargetPrefixError(ValueError):
    """A target prefix the output cannot start with; the message is meant for the client."""


def target_prefix_ids(tokenizer, text: str, max_new_tokens: int, eos_token_id: int | None = None) -> tuple[int, ...]:
    """The decoder tokens of `text`, tokenized without special tokens added (an added or special
    token written in it, such as NLLB's `fra_Latn`, is its own id). Raises TargetPrefixError for
    a prefix that is empty, that the vocabulary cannot encode (it would come back as the unknown
    token), that holds the end-of-sequence token, or that is longer than max_new_tokens (the
    prefix is part of the output)."""
    if not text:
        raise TargetPrefixError("target_prefix is empty")
    # As target text: Marian's tokenizer has a SentencePiece model of its own for the target side.
    ids = tuple(tokenizer(text_target=text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise TargetPrefixError(f"target_prefix {text!r} encodes to no tokens")
    unknown = tokenizer.unk_token_id
    if unknown is not None and unknown in ids and (tokenizer.unk_token or "") not in text:
        raise TargetPrefixError(f"target_prefix {text!r} has characters the model's vocabulary cannot "
                                f"encode (they become {tokenizer.unk_token})")
    if eos_token_id is not None and eos_token_id in ids:
        raise TargetPrefixError(f"target_prefix {text!r} holds the end-of-sequence token")
    if len(ids) > max_new_tokens:
        raise TargetPrefixError(f"target_prefix {text!r} is {len(ids)} tokens, more than max_new_tokens "
                                f"({max_new_tokens}); the prefix is part of the output")
    return ids
