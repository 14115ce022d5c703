"""Turning one token at a time into text that is safe to send.

Two things make this harder than decoding each token alone:

- A token's text depends on its neighbours (SentencePiece drops the leading space of the first
  piece it decodes; a byte-level tokenizer may split one character over several tokens). So, as
  vLLM and TGI do, we decode a short window that starts at `prefix_offset`, compare it with the
  same window without the newest tokens (`read_offset`), and send only the difference. While the
  window's text ends in U+FFFD the last character is an incomplete UTF-8 sequence: nothing is
  sent until a later token completes it (or the request finishes, and then it is sent as is, so
  the joined pieces still equal `decode(all_ids)`).
- A stop sequence may arrive split over several tokens. Text is held back only while its end
  could still be the start of a stop sequence; once a stop sequence appears, the text before it
  is sent and the stop text and everything after it never is.
"""
from __future__ import annotations

from typing import Callable

REPLACEMENT_CHAR = "\ufffd"


class IncrementalDetokenizer:
    def __init__(self, decode: Callable[[list[int]], str], stop: tuple[str, ...] = ()) -> None:
        self._decode = decode
        self._stop = tuple(s for s in stop if s)
        self._max_stop_len = max((len(s) for s in self._stop), default=0)
        self.prefix_offset = 0  # window start: the tokens decoded as context only
        self.read_offset = 0  # tokens before this have had their text taken
        self.held = ""  # decoded text not sent yet because it may begin a stop sequence
        self.stopped = False  # a stop sequence matched; nothing more will be sent

    def step(self, token_ids: list[int], final: bool = False) -> str:
        """Return the text newly safe to send, given all output ids so far (the caller appends,
        never rewrites). `final=True` on the last call flushes incomplete characters and any
        held text that did not become a stop sequence."""
        if self.stopped:
            return ""
        new_text = self._new_text(token_ids, final)
        return self._apply_stop(self.held + new_text, final)

    def _new_text(self, token_ids: list[int], final: bool) -> str:
        if len(token_ids) <= self.read_offset:
            return ""
        prefix_text = self._decode(token_ids[self.prefix_offset:self.read_offset])
        window_text = self._decode(token_ids[self.prefix_offset:])
        if not final and (len(window_text) <= len(prefix_text)
                          or window_text.endswith(REPLACEMENT_CHAR)):
            return ""  # incomplete character, or no visible text yet: wait for more tokens
        if not window_text.startswith(prefix_text):
            # The tokenizer rewrote text it had already produced (rare clean-up rules); the
            # already-sent prefix cannot change, so send what lies beyond its length.
            prefix_text = window_text[:len(prefix_text)]
        self.prefix_offset = self.read_offset
        self.read_offset = len(token_ids)
        return window_text[len(prefix_text):]

    def _apply_stop(self, text: str, final: bool) -> str:
        if not self._stop:
            self.held = ""
            return text
        cut = _first_stop(text, self._stop)
        if cut is not None:
            self.stopped = True
            self.held = ""
            return text[:cut]
        keep = len(text) if final else self._holdback_start(text)
        self.held = text[keep:]
        return text[:keep]

    def _holdback_start(self, text: str) -> int:
        """Index of the longest suffix of `text` that is a proper prefix of a stop sequence."""
        for start in range(max(0, len(text) - self._max_stop_len + 1), len(text)):
            tail = text[start:]
            if any(s.startswith(tail) for s in self._stop):
                return start
        return len(text)


def _first_stop(text: str, stop: tuple[str, ...]) -> int | None:
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(hits) if hits else None
