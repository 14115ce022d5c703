"""One error type for whatever a client must hear about, and the one mapping of a pydantic
validation error to it. No Starlette here: the engine raises these for any front end, and the
HTTP layer turns them into the contract's JSON error body (takeoff/api/http.py)."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class ApiError(Exception):
    """An error a client caused or must hear about: HTTP status plus the JSON error body."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param}}


class TooLarge(ValueError):
    """Raised by a validator for a value over a size limit: a 413, where other ValueErrors
    are 400s."""


def bad_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", param)


def not_found(message: str, param: str | None = None) -> ApiError:
    return ApiError(404, message, "not_found_error", param)


def too_large(message: str, param: str | None = None) -> ApiError:
    return ApiError(413, message, "request_too_large", param)


def overloaded(retry_after_s: int = 1) -> ApiError:
    return ApiError(429, "The server is busy: its request queue is full. Retry shortly.",
                    "overloaded_error", None, {"Retry-After": str(retry_after_s)})


def unavailable(message: str = "The server is not ready.") -> ApiError:
    return ApiError(503, message, "service_unavailable", None, {"Retry-After": "1"})


def validation_error(exc: ValidationError) -> ApiError:
    """The first mistake: `param` is the top-level field it is in, the message names the full
    path ("messages[0].content: ..."). 413 when a validator raised TooLarge, else 400."""
    error = exc.errors(include_url=False)[0]
    location = [part for part in error["loc"] if not _is_union_branch(part)]
    param = str(location[0]) if location else None
    message = error["msg"].removeprefix("Value error, ")
    if location and not message.startswith("'"):
        message = f"{_path(location)}: {message}"
    if isinstance(error.get("ctx", {}).get("error"), TooLarge):
        return too_large(message, param)
    return bad_request(message, param)


def _is_union_branch(part: Any) -> bool:
    # pydantic names the branch of a union it tried ("str", "list[str]") in the location
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool"))


def _path(location: list) -> str:
    path = str(location[0])
    for part in location[1:]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path
