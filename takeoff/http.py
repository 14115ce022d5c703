"""Reading a request body as a JSON object, within the size limit (its fields are checked by
the pydantic models in takeoff/schemas.py)."""
from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from takeoff.errors import bad_request, too_large

DEFAULT_MAX_BODY_BYTES = 1 << 20


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
