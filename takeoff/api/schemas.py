"""The conventions of every request body, validated once at the edge (one pydantic model per
endpoint: takeoff/api/takeoff_schemas.py, openai_schemas.py), and the one mapping of a
validation error to the contract's 400.

Every default lives in those models. Unset fields may arrive as JSON null (Takeoff's client sends them so):
null means "the default". Types are strict (no "5" for 5, no true for 1), numbers finite. A
mistake raises pydantic's ValidationError, which `validation_error_response` turns into the
contract's 400 body, naming the field. Limits that depend on the server (its max_new_tokens, a
group's capacity) come in through the validation context.
"""
from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, \
    model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse

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


def parse(model: type[Body], body: dict, **context) -> Any:
    """Validate `body` as `model`; `context` carries what a check needs of the server."""
    return model.model_validate(body, context=context)


def validation_error_response(request: Request, exc: ValidationError) -> JSONResponse:
    """The contract's 400 for the first mistake: `param` is the top-level field it is in, the
    message names the full path ("messages[0].content: ...")."""
    error = exc.errors(include_url=False)[0]
    location = [part for part in error["loc"] if not _is_union_branch(part)]
    param = str(location[0]) if location else None
    message = error["msg"].removeprefix("Value error, ")
    if location and not message.startswith("'"):
        message = f"{_path(location)}: {message}"
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param}}
    return JSONResponse(body, status_code=400)


def _is_union_branch(part: Any) -> bool:
    # pydantic names the branch of a union it tried ("str", "list[str]") in the location
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool"))


def _path(location: list) -> str:
    path = str(location[0])
    for part in location[1:]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


