"""Request bodies, validated once at the edge: one pydantic model per endpoint.

Every default lives here. Unset fields may arrive as JSON null (Takeoff's client sends them so):
null means "the default". Types are strict (no "5" for 5, no true for 1), numbers finite. A
mistake raises pydantic's ValidationError, which `validation_error_response` turns into the
contract's 400 body, naming the field. Limits that depend on the server (its max_new_tokens, a
group's capacity) come in through the validation context.
"""
from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, \
    field_validator, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse

from scheduler.sampling_params import SamplingParams
from takeoff.errors import bad_request

MAX_SEED = 2**63 - 1
MAX_STOP_SEQUENCES = 16

Finite = Annotated[float, Field(allow_inf_nan=False)]


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k not in cls.model_fields
                    or cls.model_fields[k].is_required()}
        return data


def text_field(value: Any, name: str = "text") -> str:
    """A required, non-blank string."""
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string")
    if not value.strip():
        raise ValueError(f"'{name}' must not be empty")
    return value


def texts_field(value: Any) -> str | list[str]:
    """A non-blank string, or a non-empty list of them."""
    if isinstance(value, list):
        if not value:
            raise ValueError("'text' must not be an empty list")
        if not all(isinstance(t, str) and t.strip() for t in value):
            raise ValueError("'text' must be a string or a list of non-empty strings")
        return value
    return text_field(value)


def stop_field(value: Any) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list):
        raise ValueError("'stop' must be a string or a list of strings")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise ValueError(f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences")
    if not all(isinstance(s, str) and s for s in stops):
        raise ValueError("'stop' must be a list of non-empty strings")
    return tuple(stops)


_DEFAULT = SamplingParams()  # Takeoff's defaults are SamplingParams' own


def schema_text(value: Any, name: str) -> str | None:
    """A JSON schema, given as an object (or as JSON text), kept as compact JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"'{name}' must be a JSON schema object (or its JSON text)") from None
    if not isinstance(value, dict):
        raise ValueError(f"'{name}' must be a JSON schema object")
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class TakeoffSampling(Body):
    """Takeoff's sampling fields and names (defaults: greedy, 128 new tokens)."""
    max_new_tokens: int = Field(_DEFAULT.max_new_tokens, ge=1)
    min_new_tokens: int = Field(_DEFAULT.min_new_tokens, ge=0)
    sampling_temperature: Finite = Field(_DEFAULT.temperature, ge=0)
    sampling_topp: Finite = Field(_DEFAULT.top_p, gt=0, le=1)
    sampling_topk: int = Field(_DEFAULT.top_k, ge=0)
    repetition_penalty: Finite = Field(_DEFAULT.repetition_penalty, gt=0)
    no_repeat_ngram_size: int = Field(_DEFAULT.no_repeat_ngram_size, ge=0)
    seed: int | None = Field(_DEFAULT.seed, ge=0, le=MAX_SEED)
    stop: tuple[str, ...] = ()
    consumer_group: str | None = None
    prompt_max_tokens: int | None = Field(None, ge=1)
    regex_string: str | None = Field(None, min_length=1)
    json_schema: str | None = None  # a schema object arrives as JSON text (see below)
    constrained_decoding_backend: str | None = None  # accepted; this server has one (llguidance)

    _check_stop = field_validator("stop", mode="before")(stop_field)
    _schema_as_text = field_validator("json_schema", mode="before")(
        lambda value: schema_text(value, "json_schema"))

    @field_validator("max_new_tokens")
    @classmethod
    def _within_server_cap(cls, value: int, info: ValidationInfo) -> int:
        cap = (info.context or {}).get("max_new_tokens")
        if cap is not None and value > cap:
            raise ValueError(f"'max_new_tokens' must be at most {cap} on this server")
        return value

    @model_validator(mode="after")
    def _min_within_max(self) -> TakeoffSampling:
        if self.min_new_tokens > self.max_new_tokens:
            # An ApiError passes through pydantic untouched, with the field it is about.
            raise bad_request("'min_new_tokens' must be at most max_new_tokens", "min_new_tokens")
        return self

    def sampling_params(self) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=self.max_new_tokens, min_new_tokens=self.min_new_tokens,
            temperature=self.sampling_temperature, top_p=self.sampling_topp,
            top_k=self.sampling_topk, repetition_penalty=self.repetition_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size, seed=self.seed, stop=self.stop,
            regex=self.regex_string,
            # As Takeoff: with a regex, the schema is ignored.
            json_schema=None if self.regex_string is not None else self.json_schema)


class GenerateBody(TakeoffSampling):
    text: str | list[str]
    return_metadata: bool = False

    _check_text = field_validator("text", mode="before")(texts_field)


class GenerateStreamBody(TakeoffSampling):
    text: str

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


def parse(model: type[Body], body: dict, request: Request | None = None, **context) -> Any:
    """Validate `body` as `model`; the server's own limits join the context."""
    if request is not None:
        config = request.app.state.config
        context.setdefault("max_new_tokens", config.max_new_tokens)
    return model.model_validate(body, context=context)


def validation_error_response(request: Request, exc: ValidationError) -> JSONResponse:
    """The contract's 400 for the first mistake."""
    param, message = first_mistake(exc)
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param}}
    return JSONResponse(body, status_code=400)


def first_mistake(exc: ValidationError) -> tuple[str | None, str]:
    """(`param`, message) of the first mistake: `param` is the top-level field it is in, the
    message names the full path ("messages[0].content: ...")."""
    error = exc.errors(include_url=False)[0]
    location = [part for part in error["loc"] if not _is_union_branch(part)]
    param = str(location[0]) if location else None
    message = error["msg"].removeprefix("Value error, ")
    if location and not message.startswith("'"):
        message = f"{_path(location)}: {message}"
    return param, message


def _is_union_branch(part: Any) -> bool:
    # pydantic names the branch of a union it tried ("str", "list[str]") in the location
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool"))


def _path(location: list) -> str:
    path = str(location[0])
    for part in location[1:]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


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
