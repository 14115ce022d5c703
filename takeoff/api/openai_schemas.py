"""Request bodies of the OpenAI-compatible API (see takeoff/api/schemas.py for the conventions).

OpenAI's names and defaults: temperature 1 (sampling) unless told 0, `max_tokens` (or
`max_completion_tokens`) 16 for completions and the group's cap for chat. Fields that would
change the answer in ways this server cannot honour are refused, not ignored.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from scheduler.sampling_params import SamplingParams
from takeoff.api.chat_template import Message
from takeoff.api.schemas import MAX_SEED, Body, Finite, schema_text, stop_field
from takeoff.errors import bad_request

COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
UNSUPPORTED = {"logprobs": "log probabilities", "top_logprobs": "log probabilities",
               "echo": "echo", "suffix": "suffix", "tools": "tools", "functions": "functions",
               "logit_bias": "logit_bias"}


class StreamOptions(Body):
    include_usage: bool = False


class JsonSchemaFormat(Body):
    name: str | None = None
    schema_: str = Field(alias="schema")
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
            raise bad_request("response_format of type json_schema needs its 'json_schema'",
                              "response_format")
        return self

    def schema_text(self) -> str | None:
        if self.type == "json_schema":
            return self.json_schema.schema_
        return '{"type":"object"}' if self.type == "json_object" else None


class OpenAISampling(Body):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    min_tokens: int = Field(0, ge=0)
    temperature: Finite = Field(1.0, ge=0, le=2)
    top_p: Finite = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)  # an extension, as in vLLM
    repetition_penalty: Finite = Field(1.0, gt=0)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    stop: tuple[str, ...] = ()
    n: int = Field(1, ge=1)
    best_of: int = Field(1, ge=1)
    presence_penalty: Finite = 0.0
    frequency_penalty: Finite = 0.0
    stream: bool = False
    stream_options: StreamOptions = StreamOptions()
    response_format: ResponseFormat | None = None
    _max_new_tokens: int = PrivateAttr(COMPLETION_DEFAULT_MAX_TOKENS)

    _check_stop = field_validator("stop", mode="before")(stop_field)

    @field_validator("n", "best_of")
    @classmethod
    def _one_choice(cls, value: int, info: ValidationInfo) -> int:
        if value != 1:
            raise ValueError(f"'{info.field_name}' must be 1: this server returns one choice "
                             "per prompt")
        return value

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, value: float, info: ValidationInfo) -> float:
        if value != 0:
            raise ValueError(f"'{info.field_name}' is not supported (use repetition_penalty)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, what in UNSUPPORTED.items():
                if data.get(name) not in (None, False, [], {}):
                    raise bad_request(f"'{name}': {what} is not supported by this server", name)
        return data

    @model_validator(mode="after")
    def _resolve_max_tokens(self, info: ValidationInfo) -> OpenAISampling:
        """max_completion_tokens, else max_tokens, else the endpoint's default (context)."""
        context = info.context or {}
        default = context.get("default_max_tokens", COMPLETION_DEFAULT_MAX_TOKENS)
        cap = context.get("max_new_tokens", default)
        self._max_new_tokens = self.max_completion_tokens or self.max_tokens or min(default, cap)
        if self.min_tokens > self._max_new_tokens:
            raise bad_request("'min_tokens' must be at most max_tokens", "min_tokens")
        return self

    @field_validator("max_tokens", "max_completion_tokens")
    @classmethod
    def _within_cap(cls, value: int | None, info: ValidationInfo) -> int | None:
        cap = (info.context or {}).get("max_new_tokens")
        if value is not None and cap is not None and value > cap:
            raise ValueError(f"'{info.field_name}' must be at most {cap} for this model")
        return value

    def sampling_params(self) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=self._max_new_tokens, min_new_tokens=self.min_tokens,
            temperature=self.temperature, top_k=1 if self.temperature == 0 else self.top_k,
            top_p=self.top_p, repetition_penalty=self.repetition_penalty, seed=self.seed,
            stop=self.stop,
            json_schema=self.response_format.schema_text() if self.response_format else None)


class CompletionBody(OpenAISampling):
    prompt: list[str]

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
    content: str

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


class ChatTemplateBody(Body):
    """POST /chat_template/{reader_id}: one conversation or a list of them."""
    inputs: list[list[ChatMessage]]
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
