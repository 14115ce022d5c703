"""One error type for the HTTP layer, rendered as the contract's JSON error body."""
from __future__ import annotations

from starlette.responses import JSONResponse


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

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


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
