"""Typed errors for the client: one class per kind of failure a caller may handle differently."""
from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
from typing import Iterator

import aiohttp


class TakeoffError(Exception):
    """Base of every client error; `message` is the server's own words when it sent any."""

    def __init__(self, message: str, status: int | None = None, type: str | None = None,
                 param: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.retry_after = retry_after  # seconds, from the server's Retry-After header

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.status else self.message


class BadRequestError(TakeoffError):
    """The server refused the request (4xx): fix the request, retrying will not help."""


class AuthenticationError(BadRequestError):
    """401: the API key is missing or wrong."""


class NotFoundError(BadRequestError):
    """404: unknown path or consumer group."""


class RequestTooLargeError(BadRequestError):
    """413: the body or the input is over the server's limit."""


class OverloadedError(TakeoffError):
    """429: the server's queue is full; `retry_after` is the server's hint in seconds."""


class ServerError(TakeoffError):
    """5xx, or an error event in the middle of a stream."""


class UnavailableError(ServerError):
    """503: the server is starting or draining; `retry_after` is the server's hint in seconds."""


class UnreachableError(TakeoffError, builtins.ConnectionError):
    """No HTTP answer at all: the server is down, the address is wrong, or the connection broke."""


class RequestTimeoutError(TakeoffError, builtins.TimeoutError):
    """The server did not answer (or send the next piece of a stream) within the timeout."""


def describe_error(error: TakeoffError, url: str) -> str:
    """One line a person can act on."""
    if isinstance(error, UnreachableError):
        return f"cannot reach the takeoff server at {url} - is it running? ({error.message})"
    if isinstance(error, AuthenticationError):
        return (f"the server refused the request: {error.message} - give the right key with "
                "--api-key or TAKEOFF_API_KEY")
    if isinstance(error, OverloadedError):
        retry = f" (retry after {error.retry_after:g} s)" if error.retry_after is not None else ""
        return f"the server is overloaded: {error.message}{retry}"
    if isinstance(error, UnavailableError):
        return f"the server is not ready: {error.message}"
    return str(error)


def error_for_status(status: int, body: object, retry_after: str | None = None) -> TakeoffError:
    """The typed error for an HTTP error answer, carrying the server's message."""
    message, type_, param = _parse_error_body(body, status)
    kind = {401: AuthenticationError, 404: NotFoundError, 413: RequestTooLargeError,
            429: OverloadedError, 503: UnavailableError}.get(status)
    if kind is None:
        kind = BadRequestError if 400 <= status < 500 else ServerError
    return kind(message, status, type_, param, _parse_retry_after(retry_after))


def error_from_event(data: str) -> ServerError:
    """The error carried by an `event: error` in a stream."""
    try:
        body = json.loads(data)
    except ValueError:
        body = data
    message, type_, param = _parse_error_body(body, None)
    return ServerError(message, None, type_, param)


def _parse_error_body(body: object, status: int | None) -> tuple[str, str | None, str | None]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return str(error.get("message") or f"HTTP {status}"), error.get("type"), error.get("param")
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"], None, None
    text = body.strip() if isinstance(body, str) else ""
    return (text[:500] or f"HTTP {status}"), None, None


def _parse_retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@contextlib.contextmanager
def translated_errors(url: str) -> Iterator[None]:
    """Turns aiohttp's and asyncio's exceptions into this package's typed errors."""
    try:
        yield
    except TakeoffError:
        raise
    except asyncio.TimeoutError as error:
        raise RequestTimeoutError(f"no answer from {url} in time") from error
    except aiohttp.ClientConnectorError as error:
        raise UnreachableError(f"cannot reach the server at {url} ({error.os_error})") from error
    except aiohttp.ClientError as error:
        raise UnreachableError(f"connection to {url} failed: {error}") from error
