"""The SSE decoder gives back exactly the text the server meant, however the bytes are chunked."""
from __future__ import annotations

import pytest

from clients.sse import ServerSentEvent, SSEDecoder

STREAM = ("data: Hello\r\n\r\n"
          ": keep-alive ping\r\n\r\n"
          "data: line one\r\ndata: line two\r\ndata:\r\n\r\n"
          "data:  two leading spaces, one kept\n\n"
          "data: café 🙂\r\r"
          "data:\n\n"
          "event: metadata\ndata: {\"finish_reason\": \"length\"}\n\n")

EXPECTED = [
    ServerSentEvent("message", "Hello"),
    ServerSentEvent("message", "line one\nline two\n"),
    ServerSentEvent("message", " two leading spaces, one kept"),
    ServerSentEvent("message", "café 🙂"),
    ServerSentEvent("message", ""),
    ServerSentEvent("metadata", '{"finish_reason": "length"}'),
]


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


def test_whole_stream_at_once():
    assert decode([STREAM.encode()]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_any_chunking_gives_the_same_events(size):
    raw = STREAM.encode()
    # One byte at a time splits every CRLF and every multi-byte character somewhere.
    assert decode([raw[i:i + size] for i in range(0, len(raw), size)]) == EXPECTED


def test_event_name_applies_to_one_event_only():
    events = decode([b"event: error\ndata: {}\n\ndata: after\n\n"])
    assert [e.event for e in events] == ["error", "message"]


def test_unterminated_event_is_dropped():
    assert decode([b"data: complete\n\ndata: cut off"]) == [ServerSentEvent("message", "complete")]
