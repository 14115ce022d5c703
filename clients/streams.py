"""Streamed answers as async iterators of text pieces: Takeoff's SSE (`TextStream`) and OpenAI
chat-completion chunks (`ChatStream`). Either closes its connection when closed early, which makes
the server abort the request and free its slot."""
from __future__ import annotations

import json
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp

from clients.errors import error_from_event, translated_errors
from clients.sse import ServerSentEvent, SSEDecoder

# TakeoffClient._send: (method, path, body, stream=...) -> the response once its status is good
Send = Callable[..., Awaitable[aiohttp.ClientResponse]]


class TextStream:
    """The pieces of one streamed generation, in order; `metadata` is set once it has ended.

    Closing it early (`aclose()`, `break` inside `async with`, or cancelling the task reading it)
    closes the connection, which makes the server abort the request and free its slot.
    """

    def __init__(self, send: Send, url: str, path: str, body: dict[str, Any]):
        self._send = send
        self._url = url
        self._path = path
        self._body = body
        self._response: aiohttp.ClientResponse | None = None
        self._pieces: AsyncIterator[str] | None = None
        self.metadata: dict[str, Any] | None = None

    def __aiter__(self) -> TextStream:
        return self

    async def __anext__(self) -> str:
        if self._pieces is None:
            self._pieces = self._read()
        try:
            return await self._pieces.__anext__()
        except BaseException:
            await self.aclose()
            raise

    async def __aenter__(self) -> TextStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._pieces is not None:
            await self._pieces.aclose()
        if self._response is not None:  # not read to the end: drop the connection, so that
            self._response.close()  # the server sees the disconnect and aborts the request
            self._response = None

    async def _read(self) -> AsyncIterator[str]:
        self._response = await self._send("POST", self._path, self._body, stream=True)
        decoder = SSEDecoder()
        with translated_errors(self._url):
            async for chunk in self._response.content.iter_any():
                for event in decoder.feed(chunk):
                    piece = self._piece(event)
                    if piece:
                        yield piece
            decoder.close()
        self._response.release()  # read to the end: the connection goes back to the pool
        self._response = None

    def _piece(self, event: ServerSentEvent) -> str | None:
        """The text an event carries, if any; metadata and errors are taken from it too."""
        if event.event == "error":
            raise error_from_event(event.data)
        if event.event == "metadata":
            self.metadata = json.loads(event.data)
        elif event.event == "message":
            return event.data
        return None


class ChatStream(TextStream):
    """A chat completion streamed from /v1/chat/completions (with usage): the content pieces,
    and at the end Takeoff-shaped `metadata` ({"generated_tokens", "finish_reason"})."""

    def _piece(self, event: ServerSentEvent) -> str | None:
        if event.data == "[DONE]":
            return None
        chunk = json.loads(event.data)
        if "error" in chunk:
            raise error_from_event(event.data)
        if chunk.get("usage"):
            self._metadata()["generated_tokens"] = chunk["usage"]["completion_tokens"]
        for choice in chunk.get("choices", []):
            if choice.get("finish_reason"):
                self._metadata()["finish_reason"] = choice["finish_reason"]
            return choice.get("delta", {}).get("content")
        return None

    def _metadata(self) -> dict[str, Any]:
        if self.metadata is None:
            self.metadata = {}
        return self.metadata
