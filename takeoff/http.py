"""Reading and checking request bodies: every mistake becomes a 4xx with the field named."""
from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request

from takeoff.errors import bad_request, too_large

DEFAULT_MAX_BODY_BYTES = 1 << 20
_MISSING = object()


async def read_json(request: Request, max_bytes: int | None = None) -> dict[str, Any]:
    """The body as a JSON object; 413 past the limit, 400 when it is not a JSON object."""
    limit = max_bytes or getattr(request.app.state, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(f"request body is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(f"request body is over the limit of {limit} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("request body must be a JSON object")
    return data


def get_field(body: dict, name: str, kind: type | tuple[type, ...], default: Any = _MISSING,
              *, nullable: bool = False) -> Any:
    """body[name] checked against `kind` (bool is never accepted as a number)."""
    if name not in body or (body[name] is None and default is not _MISSING):
        if default is _MISSING:
            raise bad_request(f"'{name}' is required", name)
        return default
    value = body[name]
    if value is None and nullable:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise bad_request(f"'{name}' must be {_kind_name(kinds)}", name)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kinds):
        raise bad_request(f"'{name}' must be {_kind_name(kinds)}", name)
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "a boolean",
             list: "a list", dict: "an object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def get_text(body: dict, name: str = "text") -> str:
    """A required, non-empty string field."""
    value = get_field(body, name, str)
    if not value.strip():
        raise bad_request(f"'{name}' must not be empty", name)
    return value


def get_number(body: dict, name: str, kind: type, default: Any, *, minimum: float | None = None,
               maximum: float | None = None, above: float | None = None) -> Any:
    """A finite int or float field within its range (`above` is an exclusive lower bound)."""
    value = get_field(body, name, kind, default)
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise bad_request(f"'{name}' must be a finite number", name)
    if minimum is not None and value < minimum:
        raise bad_request(f"'{name}' must be at least {minimum}", name)
    if above is not None and value <= above:
        raise bad_request(f"'{name}' must be greater than {above}", name)
    if maximum is not None and value > maximum:
        raise bad_request(f"'{name}' must be at most {maximum}", name)
    return value
