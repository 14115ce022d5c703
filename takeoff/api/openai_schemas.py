"""Request bodies of the OpenAI-compatible API (see takeoff/api/schemas.py for the conventions).

OpenAI's names and defaults: temperature 1 (sampling) unless told 0, `max_tokens` (or
`max_completion_tokens`) 16 for completions and the group's cap for chat. Fields that would
change the answer in ways this server cannot honour are refused, not ignored. Beam search comes
as extra fields (Takeoff's names, and vLLM's `use_beam_search`, num_beams = n); `n` choices per
prompt are its n best sequences.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, WithJsonSchema, field_validator, model_validator

from scheduler.sampling_params import SamplingRequest
from takeoff.api.chat_template import Message
from takeoff.api.schemas import MAX_SEED, Answer, BeamFields, Body, Finite, JsonSchemaText, \
    Penalty, Stop, schema_text, stop_field, temperature_field

COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
# OpenAI's name of each sampling field -> SamplingParams' (max_tokens, max_completion_tokens,
# response_format, n and use_beam_search are mapped in OpenAISampling.sampling).
SAMPLING_FIELDS = {"min_tokens": "min_new_tokens", "temperature": "temperature", "top_p": "top_p",
                   "top_k": "top_k", "repetition_penalty": "repetition_penalty", "seed": "seed",
                   "stop": "stop", "num_beams": "num_beams", "length_penalty": "length_penalty",
                   "early_stopping": "early_stopping",
                   "num_return_sequences": "num_return_sequences"}
# Where OpenAI's defaults differ from SamplingParams' (Takeoff's): it samples unless told not to.
DEFAULTS = {"temperature": 1.0, "top_k": 0}
UNSUPPORTED = {"logprobs": "log probabilities", "top_logprobs": "log probabilities",
               "echo": "echo", "suffix": "suffix", "tools": "tools", "functions": "functions",
               "logit_bias": "logit_bias"}


class StreamOptions(Body):
    include_usage: bool = False


class JsonSchemaFormat(Body):
    name: str | None = None
    schema_: JsonSchemaText = Field(alias="schema")
    strict: bool | None = None

    _schema_as_text = field_validator("schema_", mode="before")(
        lambda value: schema_text(value, "response_format.json_schema.schema"))


class ResponseFormat(Body):
    """OpenAI's response_format: text (no constraint), json_object (any JSON object) or
    json_schema (JSON valid for the schema)."""
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs its 'json_schema'")
        return self

    def schema_text(self) -> str | None:
        if self.type == "json_schema":
            return self.json_schema.schema_
        return '{"type":"object"}' if self.type == "json_object" else None


class OpenAISampling(BeamFields):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    min_tokens: int = Field(0, ge=0)
    temperature: Finite = Field(1.0, ge=0, le=2)
    top_p: Finite = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)  # an extension, as in vLLM
    repetition_penalty: Penalty = 1.0
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    stop: Stop = ()
    n: int = Field(1, ge=1, description="choices per prompt: more than 1 needs beam search "
                                         "(its n best sequences)")
    best_of: int = Field(1, ge=1)
    # Beam search: BeamFields' extra fields, or vLLM's use_beam_search (num_beams = n).
    use_beam_search: bool = Field(False, description="as vLLM: beam search with num_beams = n")
    presence_penalty: Finite = 0.0
    frequency_penalty: Finite = 0.0
    stream: bool = False
    stream_options: StreamOptions = StreamOptions()
    response_format: ResponseFormat | None = None
    # OpenAI's fields this server cannot honour: refused (400) unless null, false or empty.
    logprobs: Any = None
    top_logprobs: Any = None
    echo: Any = None
    suffix: Any = None
    tools: Any = None
    functions: Any = None
    logit_bias: Any = None
    # max_tokens when the client sets none: a number, or None for the server's cap
    DEFAULT_MAX_TOKENS: ClassVar[int | None] = COMPLETION_DEFAULT_MAX_TOKENS

    _check_stop = field_validator("stop", mode="before")(stop_field)
    _check_temperature = field_validator("temperature")(temperature_field)

    @field_validator("best_of")
    @classmethod
    def _no_best_of(cls, value: int) -> int:
        if value != 1:
            raise ValueError("'best_of' must be 1 (for several choices, use beam search and n)")
        return value

    @field_validator("n")
    @classmethod
    def _as_many_as_asked(cls, value: int, info: ValidationInfo) -> int:
        """n > 1 is num_return_sequences (the beam fields are checked before n)."""
        if value > 1 and info.data.get("num_return_sequences") not in (None, 1, value):
            raise ValueError("'n' differs from 'num_return_sequences': give one of them")
        return value

    @field_validator("use_beam_search")
    @classmethod
    def _one_beam_width(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("num_beams") not in (None, 1, info.data.get("n")):
            raise ValueError("'use_beam_search' takes num_beams from 'n', and 'num_beams' "
                             "differs")
        return value

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, value: float, info: ValidationInfo) -> float:
        if value != 0:
            raise ValueError(f"'{info.field_name}' is not supported (use repetition_penalty)")
        return value

    @field_validator(*UNSUPPORTED, mode="before")
    @classmethod
    def _unsupported(cls, value: Any, info: ValidationInfo) -> Any:
        if value not in (None, False, [], {}):
            raise ValueError(f"'{info.field_name}': {UNSUPPORTED[info.field_name]} is not "
                             "supported by this server")
        return value

    def sampling(self) -> SamplingRequest:
        """The fields the client set, over OpenAI's defaults. max_completion_tokens, else
        max_tokens, is max_new_tokens; temperature 0 is greedy."""
        explicit = {SAMPLING_FIELDS[name]: getattr(self, name)
                    for name in self.model_fields_set & SAMPLING_FIELDS.keys()}
        names = {v: k for k, v in SAMPLING_FIELDS.items()} | {"max_new_tokens": "max_tokens",
                                                                "json_schema": "response_format"}
        for name in ("max_tokens", "max_completion_tokens"):  # the second wins
            if name in self.model_fields_set:
                explicit["max_new_tokens"], names["max_new_tokens"] = getattr(self, name), name
        if self.temperature == 0:
            explicit["top_k"] = 1
        if self.n > 1:  # n choices are the n best sequences
            explicit["num_return_sequences"], names["num_return_sequences"] = self.n, "n"
        if self.use_beam_search:
            explicit["num_beams"], names["num_beams"] = self.n, "n"
        if self.response_format is not None:
            explicit["json_schema"] = self.response_format.schema_text()
        defaults = {**DEFAULTS, "max_new_tokens": self.DEFAULT_MAX_TOKENS}
        return SamplingRequest(explicit, defaults, names)


class CompletionBody(OpenAISampling):
    prompt: Annotated[list[str], WithJsonSchema({
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"},
                                       "minItems": 1}],
        "description": "a prompt, or a list of them (one choice each)"})]

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompts(cls, value: Any) -> list[str]:
        prompts = [value] if isinstance(value, str) else value
        if not isinstance(prompts, list) or not prompts \
                or not all(isinstance(p, str) for p in prompts):
            raise ValueError("'prompt' must be a string or a non-empty list of strings "
                             "(token-id prompts are not supported)")
        if not all(p.strip() for p in prompts):
            raise ValueError("'prompt' must not be empty")
        return prompts


class ChatMessage(Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Annotated[str, WithJsonSchema({
        "anyOf": [{"type": "string"}, {"type": "array", "items": {
            "type": "object", "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
            "required": ["type", "text"]}}],
        "description": "the text, or a list of text parts"})]

    @field_validator("content", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> str:
        """A string, or a list of text parts (other kinds of part are refused)."""
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                           and isinstance(p.get("text"), str) for p in value):
            return "".join(p["text"] for p in value)
        raise ValueError("must be a string or a list of text parts (this server reads text "
                         "only)")


class ChatCompletionBody(OpenAISampling):
    messages: list[ChatMessage] = Field(min_length=1)
    DEFAULT_MAX_TOKENS: ClassVar[int | None] = None  # as many as the server allows

    def chat_messages(self) -> list[Message]:
        return [Message(m.role, m.content) for m in self.messages]


class EmbeddingsBody(Body):
    """POST /v1/embeddings: OpenAI's fields (token-id inputs are not supported)."""
    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> str | list[str]:
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value and all(isinstance(t, str) and t for t in value):
            return value
        raise ValueError("'input' must be a non-empty string or a non-empty list of them "
                         "(token-id inputs are not supported)")

    @field_validator("dimensions")
    @classmethod
    def _the_models(cls, value: int | None, info: ValidationInfo) -> int | None:
        """Checked before anything runs: the context's dimensions_of(model) gives the vector
        length of the group `model` names (None when it names none: a 404 later)."""
        dimensions_of = (info.context or {}).get("dimensions_of")
        if value is not None and dimensions_of is not None:
            length = dimensions_of(info.data.get("model"))
            if length is not None and length != value:
                raise ValueError(f"'dimensions': this model's vectors have {length}")
        return value

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


# ---- answers --------------------------------------------------------------------------------
FinishReason = Literal["stop", "length"]


class ModelCard(Answer):
    id: str = Field(description="a consumer group")
    object: Literal["model"]
    created: int
    owned_by: str
    task: Literal["generate", "classify", "embed"]


class ModelList(Answer):
    object: Literal["list"]
    data: list[ModelCard]


class Usage(Answer):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(Answer):
    index: int
    text: str
    logprobs: None
    finish_reason: FinishReason


class AssistantMessage(Answer):
    role: Literal["assistant"]
    content: str


class ChatChoice(Answer):
    index: int
    message: AssistantMessage
    logprobs: None
    finish_reason: FinishReason


class Completion(Answer):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ChatCompletion(Completion):
    object: Literal["chat.completion"]
    choices: list[ChatChoice]


class Embedding(Answer):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class EmbeddingUsage(Answer):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(Answer):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    result: list[float] | list[list[float]] = Field(description="as /embed answers (Takeoff's "
                                                                "clients read it)")
