"""An incremental Server-Sent Events decoder, following the WHATWG event-stream parsing rules."""
from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str  # "message" unless the server named it
    data: str  # the `data:` lines joined with "\n"
    id: str | None = None


class SSEDecoder:
    """Feed bytes as they arrive; get back the events they complete.

    Lines may end in CRLF, LF or CR (a CR at the end of a chunk waits for the next one, which may
    start with its LF), and a UTF-8 character may be split across chunks.
    """

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # text after the last complete line
        self._event = ""
        self._data: list[str] = []
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        self._pending += self._text.decode(chunk)
        events = []
        for line in self._complete_lines():
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[ServerSentEvent]:
        """Events completed by the end of the stream (a last line without its terminator)."""
        self._pending += self._text.decode(b"", final=True)
        if self._pending:
            line, self._pending = self._pending.rstrip("\r"), ""
            self._process_line(line)
        # A half-received event (no blank line after it) is dropped, as the spec says.
        return []

    def _complete_lines(self) -> list[str]:
        text = self._pending.replace("\r\n", "\n")
        if text.endswith("\r"):  # maybe the first half of a CRLF: keep it for the next chunk
            head, self._pending = text[:-1], "\r"
        else:
            head, self._pending = text, ""
        lines = head.replace("\r", "\n").split("\n")
        self._pending = lines.pop() + self._pending
        return lines

    def _process_line(self, line: str) -> ServerSentEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, e.g. a keep-alive ping
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._last_id = value
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(self._event or "message", "\n".join(self._data), self._last_id)
        self._event, self._data = "", []
        return event
