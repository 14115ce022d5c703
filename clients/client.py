"""A Python client for a takeoff server: `TakeoffClient` (asyncio, aiohttp) and `Client` (blocking).

    async with TakeoffClient("http://localhost:3000") as client:
        print(await client.generate("Translate to German: hello"))
        async for piece in client.generate_stream("Tell me a story"):
            print(piece, end="", flush=True)
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from clients.errors import error_for_status, translated_errors
from clients.streams import ChatStream, TextStream

DEFAULT_URL = "http://localhost:3000"


def request_body(text: str | list[str], **fields: Any) -> dict[str, Any]:
    """A request body: `text` plus every field that was given (None: the server's default)."""
    body = {"text": text}
    body.update({name: value for name, value in fields.items() if value is not None})
    if "stop" in body and isinstance(body["stop"], str):
        body["stop"] = [body["stop"]]
    return body


def sampling_fields(temperature: float | None, top_k: int | None = None) -> dict[str, Any]:
    """Takeoff's sampling fields for a temperature: Takeoff is greedy (top-k 1) unless told
    otherwise, so a temperature above 0 without a top-k samples from the whole distribution."""
    if temperature is None:
        return {"sampling_topk": top_k}
    if temperature == 0:
        return {"sampling_topk": 1 if top_k is None else top_k}
    return {"sampling_temperature": temperature, "sampling_topk": 0 if top_k is None else top_k}


class TakeoffClient:
    """An asyncio client; one aiohttp session (connection pool) for all its calls.

    `timeout` bounds a whole answer, or for a stream the wait for each next piece;
    `connect_timeout` bounds reaching the server.
    """

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None,
                 timeout: float = 120.0, connect_timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "TakeoffClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def generate(self, text: str | list[str], *, max_new_tokens: int | None = None,
                       min_new_tokens: int | None = None, sampling_temperature: float | None = None,
                       sampling_topp: float | None = None, sampling_topk: int | None = None,
                       repetition_penalty: float | None = None,
                       no_repeat_ngram_size: int | None = None, seed: int | None = None,
                       stop: str | list[str] | None = None, prompt_max_tokens: int | None = None,
                       num_beams: int | None = None, length_penalty: float | None = None,
                       early_stopping: bool | str | None = None,
                       num_return_sequences: int | None = None,
                       return_metadata: bool | None = None,
                       consumer_group: str | None = None) -> dict[str, Any]:
        """POST /generate; the server's answer: `{"text": ...}` (plus `metadata` when asked).
        With num_return_sequences n > 1 (beam search), each input's text is a list of n."""
        fields = {k: v for k, v in locals().items() if k not in ("self", "text")}
        return await self._json("POST", "/generate", request_body(text, **fields))

    def generate_stream(self, text: str, *, max_new_tokens: int | None = None,
                        min_new_tokens: int | None = None,
                        sampling_temperature: float | None = None,
                        sampling_topp: float | None = None, sampling_topk: int | None = None,
                        repetition_penalty: float | None = None,
                        no_repeat_ngram_size: int | None = None, seed: int | None = None,
                        stop: str | list[str] | None = None,
                        prompt_max_tokens: int | None = None, num_beams: int | None = None,
                        length_penalty: float | None = None,
                        early_stopping: bool | str | None = None,
                        consumer_group: str | None = None) -> TextStream:
        """POST /generate_stream; an async iterator of text pieces (see `TextStream`); a beam
        search's one piece is its best sequence."""
        fields = {k: v for k, v in locals().items() if k not in ("self", "text")}
        return TextStream(self._send, self.url, "/generate_stream", request_body(text, **fields))

    def chat_stream(self, messages: list[dict[str, str]], *, model: str | None = None,
                    max_tokens: int | None = None, temperature: float | None = None,
                    top_k: int | None = None) -> ChatStream:
        """POST /v1/chat/completions, streamed: the server's chat template turns the messages
        into the model's input (for the feedback rewriter, the system message is the context)."""
        body: dict[str, Any] = {"messages": messages, "stream": True,
                                "stream_options": {"include_usage": True}}
        fields = {"model": model, "max_tokens": max_tokens, "temperature": temperature,
                  "top_k": top_k}
        body.update({name: value for name, value in fields.items() if value is not None})
        return ChatStream(self._send, self.url, "/v1/chat/completions", body)

    async def classify(self, text: str | list[str] | list[list[str]],
                       consumer_group: str | None = None) -> dict[str, Any]:
        """POST /classify → `{"result": [[p, ...], ...], "labels": [...]}`."""
        return await self._json("POST", "/classify", request_body(
            text, consumer_group=consumer_group))

    async def tokenize(self, text: str, consumer_group: str | None = None) -> dict[str, Any]:
        """POST /tokenize → `{"tokens": [...], "ids": [...]}`."""
        answer = await self._json("POST", "/tokenize", request_body(
            text, consumer_group=consumer_group))
        return answer["result"]

    async def analyze_feedback(self, text: str, context: str = "") -> dict[str, Any]:
        """POST /v1/feedback/analyze → each sentence with its label and kind."""
        return await self._json("POST", "/v1/feedback/analyze", {"text": text, "context": context})

    async def reader_groups(self) -> dict[str, Any]:
        return await self._json("GET", "/reader_groups")

    async def health(self) -> Any:
        return await self._json("GET", "/health")

    async def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self._send(method, path, body, stream=False)
        with translated_errors(self.url):
            async with response:
                return await response.json(content_type=None)

    async def _send(self, method: str, path: str, body: dict[str, Any] | None,
                    stream: bool) -> aiohttp.ClientResponse:
        """The response once its status is known good; a typed error otherwise."""
        timeout = aiohttp.ClientTimeout(total=None if stream else self.timeout,
                                        sock_connect=self.connect_timeout,
                                        sock_read=self.timeout)
        with translated_errors(self.url):
            response = await self._get_session().request(
                method, self.url + path, json=body, timeout=timeout)
            if response.status >= 400:
                async with response:
                    raw = await response.text()
                try:
                    parsed: Any = json.loads(raw)
                except ValueError:
                    parsed = raw
                raise error_for_status(response.status, parsed, response.headers.get("Retry-After"))
            return response

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._session = aiohttp.ClientSession(headers=headers)
        return self._session


class _SyncTextStream:
    """`TextStream` driven by a `Client`'s event loop: a plain iterator of text pieces."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: TextStream):
        self._loop = loop
        self._stream = stream

    @property
    def metadata(self) -> dict[str, Any] | None:
        return self._stream.metadata

    def __iter__(self) -> "_SyncTextStream":
        return self

    def __next__(self) -> str:
        try:
            return self._loop.run_until_complete(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def __enter__(self) -> "_SyncTextStream":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._loop.run_until_complete(self._stream.aclose())


class Client:
    """The same calls as `TakeoffClient`, blocking; `generate_stream` is a plain iterator.

    It runs its own event loop, so it must not be used from inside a running one.
    """

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None,
                 timeout: float = 120.0, connect_timeout: float = 10.0):
        self._loop = asyncio.new_event_loop()
        self._client = TakeoffClient(url, api_key, timeout, connect_timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.close())
            self._loop.close()

    def generate(self, text: str | list[str], **fields: Any) -> dict[str, Any]:
        return self._loop.run_until_complete(self._client.generate(text, **fields))

    def generate_stream(self, text: str, **fields: Any) -> _SyncTextStream:
        return _SyncTextStream(self._loop, self._client.generate_stream(text, **fields))

    def classify(self, text: str | list[str] | list[list[str]],
                 consumer_group: str | None = None) -> dict[str, Any]:
        return self._loop.run_until_complete(self._client.classify(text, consumer_group))

    def tokenize(self, text: str, consumer_group: str | None = None) -> dict[str, Any]:
        return self._loop.run_until_complete(self._client.tokenize(text, consumer_group))

    def analyze_feedback(self, text: str, context: str = "") -> dict[str, Any]:
        return self._loop.run_until_complete(self._client.analyze_feedback(text, context))

    def reader_groups(self) -> dict[str, Any]:
        return self._loop.run_until_complete(self._client.reader_groups())

    def health(self) -> Any:
        return self._loop.run_until_complete(self._client.health())
