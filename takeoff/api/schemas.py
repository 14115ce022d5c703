"""The conventions of every request body, validated once at the edge: one pydantic model per
endpoint (takeoff/api/takeoff_schemas.py, openai_schemas.py, management_schemas.py, and the
feedback app's), the same models that describe the API in /openapi.json.

Every default lives in those models. Unset fields may arrive as JSON null (Takeoff's client sends
them so): null means "the default". Types are strict (no "5" for 5, no true for 1), numbers
finite. Validators raise ValueError (takeoff.errors.TooLarge for a size limit) and nothing else;
the app's one handler turns the ValidationError into the contract's error body, naming the field
(takeoff.errors.validation_error). What a check needs of the server comes in through the
validation context.
"""
from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, \
    model_validator

from scheduler.sampling_params import SamplingParams

MAX_SEED = 2**63 - 1
MAX_STOP_SEQUENCES = 16

Finite = Annotated[float, Field(allow_inf_nan=False)]
# Dividing float32 logits by less than these overflows them to inf, and sampling from inf fails
# (the schemathesis run found a repetition_penalty of 1e-185): 0 is greedy, anything between is a 400.
MIN_TEMPERATURE = 1e-3
PENALTY_RANGE = (0.01, 100.0)
Penalty = Annotated[float, Field(allow_inf_nan=False, ge=PENALTY_RANGE[0], le=PENALTY_RANGE[1])]


def temperature_field(value: float) -> float:
    """0 (greedy), or at least MIN_TEMPERATURE."""
    if 0 < value < MIN_TEMPERATURE:
        raise ValueError(f"must be 0 (greedy) or at least {MIN_TEMPERATURE}")
    return value
# Fields whose before-validators take more than their Python type says, as /openapi.json
# describes them.
Stop = Annotated[tuple[str, ...], WithJsonSchema({
    "anyOf": [{"type": "string", "minLength": 1},
              {"type": "array", "items": {"type": "string", "minLength": 1},
               "maxItems": MAX_STOP_SEQUENCES}],
    "description": "a stop sequence, or a list of them; the text ends before it"})]
JsonSchemaText = Annotated[str, WithJsonSchema({
    "anyOf": [{"type": "object"}, {"type": "string"}],
    "description": "a JSON schema, or its JSON text"})]
EarlyStopping = Annotated[bool | str, WithJsonSchema({
    "anyOf": [{"type": "boolean"}, {"const": "never"}],
    "description": "beam search: true ends once num_beams hypotheses are done; false (a "
                   "heuristic) and \"never\" as Hugging Face's generate"})]
_BEAM_DEFAULTS = SamplingParams()


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


class BeamFields(Body):
    """Beam search's fields, the same in every API (OpenAI's take them as extra body fields);
    their names are SamplingParams'."""
    num_beams: int = Field(_BEAM_DEFAULTS.num_beams, ge=1, description=(
        "beam search: hypotheses kept per step, one KV slot each; 1 decodes greedily. At most "
        "--max-num-beams (8) and the generator's slots (its max_num_beams)"))
    length_penalty: Finite = Field(_BEAM_DEFAULTS.length_penalty, description=(
        "beam search: a finished hypothesis scores sum(log p) / its length ** this (above 0 "
        "favours longer ones)"))
    early_stopping: EarlyStopping = _BEAM_DEFAULTS.early_stopping
    num_return_sequences: int = Field(_BEAM_DEFAULTS.num_return_sequences, ge=1, description=(
        "beam search: the best this many hypotheses come back, 1..num_beams"))

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _early_stopping(cls, value: Any) -> bool | str:
        if isinstance(value, bool) or value == "never":
            return value
        raise ValueError("'early_stopping' must be true, false or \"never\"")


def parse(model: type[Body], body: dict, **context) -> Any:
    """Validate `body` as `model`; `context` carries what a check needs of the server."""
    return model.model_validate(body, context=context)


class Answer(BaseModel):
    """The base of every JSON answer's model: what the API sends, described for /openapi.json
    (the routes build the JSON; the schemathesis run holds each answer to its model)."""
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Answer):
    message: str
    type: str
    param: str | None = Field(description="the top-level request field at fault, if any")


class ErrorBody(Answer):
    """Every error, whatever its status."""
    error: ErrorDetail
