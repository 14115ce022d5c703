"""Request bodies of the Takeoff API (see takeoff/api/schemas.py for the conventions)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from scheduler.sampling_params import SamplingParams, SamplingRequest
from takeoff.api.openai_schemas import ChatMessage
from takeoff.api.schemas import MAX_SEED, Answer, BeamFields, Body, Finite, JsonSchemaText, \
    Penalty, Stop, schema_text, stop_field, temperature_field, text_field, texts_field

_DEFAULT = SamplingParams()  # Takeoff's defaults are SamplingParams' own
# Takeoff's name of each sampling field -> SamplingParams' (a new request field that shapes
# decoding is added to SamplingParams and here).
SAMPLING_FIELDS = {"max_new_tokens": "max_new_tokens", "min_new_tokens": "min_new_tokens",
                   "sampling_temperature": "temperature", "sampling_topp": "top_p",
                   "sampling_topk": "top_k", "repetition_penalty": "repetition_penalty",
                   "no_repeat_ngram_size": "no_repeat_ngram_size", "seed": "seed",
                   "stop": "stop", "regex_string": "regex", "json_schema": "json_schema",
                   "num_beams": "num_beams", "length_penalty": "length_penalty",
                   "early_stopping": "early_stopping",
                   "num_return_sequences": "num_return_sequences"}


class TakeoffSampling(BeamFields):
    """Takeoff's sampling fields and names (defaults: greedy, 128 new tokens)."""
    max_new_tokens: int = Field(_DEFAULT.max_new_tokens, ge=1)
    min_new_tokens: int = Field(_DEFAULT.min_new_tokens, ge=0)
    sampling_temperature: Finite = Field(_DEFAULT.temperature, ge=0)
    sampling_topp: Finite = Field(_DEFAULT.top_p, gt=0, le=1)
    sampling_topk: int = Field(_DEFAULT.top_k, ge=0)
    repetition_penalty: Penalty = _DEFAULT.repetition_penalty
    no_repeat_ngram_size: int = Field(_DEFAULT.no_repeat_ngram_size, ge=0)
    seed: int | None = Field(_DEFAULT.seed, ge=0, le=MAX_SEED)
    stop: Stop = ()
    consumer_group: str | None = None
    prompt_max_tokens: int | None = Field(None, ge=1)
    regex_string: str | None = Field(None, min_length=1)
    json_schema: JsonSchemaText | None = None  # kept as JSON text (see below)
    constrained_decoding_backend: str | None = None  # accepted; this server has one (llguidance)

    _check_stop = field_validator("stop", mode="before")(stop_field)
    _check_temperature = field_validator("sampling_temperature")(temperature_field)
    _schema_as_text = field_validator("json_schema", mode="before")(
        lambda value: schema_text(value, "json_schema"))

    def sampling(self) -> SamplingRequest:
        """The fields the client set, over Takeoff's defaults (SamplingParams' own)."""
        explicit = {SAMPLING_FIELDS[name]: getattr(self, name)
                    for name in self.model_fields_set & SAMPLING_FIELDS.keys()}
        if "regex" in explicit:
            explicit["json_schema"] = None  # as Takeoff: with a regex, the schema is ignored
        return SamplingRequest(explicit, names={v: k for k, v in SAMPLING_FIELDS.items()})


class GenerateBody(TakeoffSampling):
    text: str | list[str]
    return_metadata: bool = False

    _check_text = field_validator("text", mode="before")(texts_field)

    @property
    def texts(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)


class GenerateStreamBody(TakeoffSampling):
    text: str
    num_return_sequences: int = Field(1, ge=1, le=1, description="1: a stream carries the best "
                                                                 "sequence")

    @field_validator("text", mode="before")
    @classmethod
    def _one_text(cls, value: Any) -> str:
        if isinstance(value, list):
            raise ValueError("'text' must be one string: /generate_stream streams one answer")
        return text_field(value)


class ClassifyBody(Body):
    text: str | list[str | tuple[str, str]]
    consumer_group: str | None = None

    @field_validator("text", mode="before")
    @classmethod
    def _inputs(cls, value: Any) -> str | list[str | tuple[str, str]]:
        if not isinstance(value, list):
            return text_field(value)
        if not value:
            raise ValueError("'text' must not be an empty list")
        inputs: list[str | tuple[str, str]] = []
        for item in value:
            if isinstance(item, str) and item.strip():
                inputs.append(item)
            elif (isinstance(item, list) and len(item) == 2
                  and all(isinstance(t, str) and t.strip() for t in item)):
                inputs.append((item[0], item[1]))
            else:
                raise ValueError("'text' must be a string, a list of non-empty strings, or a "
                                 "list of [text, text_pair] pairs")
        return inputs

    @property
    def inputs(self) -> list[str | tuple[str, str]]:
        return [self.text] if isinstance(self.text, str) else list(self.text)


class TokenizeBody(Body):
    text: str
    consumer_group: str | None = None

    _check_text = field_validator("text", mode="before")(text_field)


class TokenizeReaderBody(Body):
    """POST /tokenize/{reader_id}: Takeoff's client also sends `use_chat_template` (no-op here)."""
    text: str
    use_chat_template: bool = False


class DetokenizeBody(Body):
    tokens: list[int] | list[str]
    skip_special_tokens: bool = True

    @field_validator("tokens", mode="before")
    @classmethod
    def _ids_or_pieces(cls, value: Any) -> list[int] | list[str]:
        if isinstance(value, list) and (all(isinstance(t, int) and not isinstance(t, bool)
                                            and t >= 0 for t in value)
                                        or all(isinstance(t, str) for t in value)):
            return value
        raise ValueError("'tokens' must be a list of token ids (non-negative integers) or of "
                         "token strings")


class EmbedBody(Body):
    text: str | list[str]
    consumer_group: str | None = None

    _check_text = field_validator("text", mode="before")(texts_field)

    @property
    def texts(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)


class ChatTemplateBody(Body):
    """POST /chat_template/{reader_id}: one conversation or a list of them."""
    inputs: list[list[ChatMessage]]
    # Takeoff's client always sends it. A seq2seq template has no generation prompt to add, so,
    # as Takeoff does for a template without one, it changes nothing (a warning is logged).
    add_generation_prompt: bool = False

    @field_validator("inputs", mode="before")
    @classmethod
    def _conversations(cls, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
            return [value]  # one conversation
        if not isinstance(value, list) or not value:
            raise ValueError("'inputs' must be a conversation (a list of messages) or a list "
                             "of conversations")
        return value


# ---- answers --------------------------------------------------------------------------------
class Metadata(Answer):
    input_tokens: int
    generated_tokens: int = Field(description="the final EOS included, when there is one")
    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    score: float | None = Field(None, description="a beam search's: the sequence's sum of "
                                                  "log-probabilities / its length ** "
                                                  "length_penalty (Hugging Face's "
                                                  "sequences_scores)")


class GenerateAnswer(Answer):
    """A list of texts answers a list, in order; with num_return_sequences n > 1 each input's
    answer is a list of n texts, best first. `metadata` (only with return_metadata) has the
    shape of `text`."""
    text: str | list[str] | list[list[str]]
    metadata: Metadata | list[Metadata] | list[list[Metadata]] | None = None


class ClassifyAnswer(Answer):
    result: list[list[float]] = Field(description="one probability row per input, in the order "
                                                  "of `labels`")
    labels: list[str]


class EmbedAnswer(Answer):
    result: list[float] | list[list[float]] = Field(description="a vector for a string, a list "
                                                                "of them for a list")


class Tokens(Answer):
    tokens: list[str]
    ids: list[int]


class TokenizeAnswer(Answer):
    result: Tokens


class TokenizeReaderAnswer(Tokens):
    tokens_count: int


class DetokenizeAnswer(Answer):
    text: str


class ChatTemplateAnswer(Answer):
    messages: list[str] = Field(description="each conversation as the chat template writes it")


class HealthAnswer(Answer):
    status: str
