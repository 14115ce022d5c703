"""The text each token adds to a decoded output, as a grammar engine must see it.

A grammar engine allows a token only if the bytes it writes keep the output inside the grammar,
so those bytes must be exactly what `tokenizer.decode` will print. Engines guess them from the
tokenizer's files and guess wrong for T5: SentencePiece pieces such as `<0x7B>` are literal text
unless the decoder has ByteFallback, and T5's decoder drops the leading space of the first piece.
This module reads them from the tokenizer's own decoder settings instead.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@dataclass(frozen=True)
class TokenVocabulary:
    texts: tuple[bytes, ...]  # bytes each token adds after other text; b"" for special tokens
    special_ids: frozenset[int]  # tokens that never appear in decoded text (pad, unk, sentinels)
    eos_token_id: int
    # T5's decoder drops one leading space from the first token it prints ("▁Yes" -> "Yes"), so
    # an output's first token must write a space that the decoded text will not show.
    drops_first_space: bool

    @property
    def num_tokens(self) -> int:
        return len(self.texts)


def token_vocabulary(tokenizer, eos_token_id: int) -> TokenVocabulary:
    """Read a Hugging Face fast tokenizer's pieces into the bytes its decoder prints for them."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = {int(i) for i in tokenizer.all_special_ids}
    special |= {i for i, added in tokenizer.added_tokens_decoder.items() if added.special}
    decoders = _decoder_steps(tokenizer)
    if "ByteLevel" in decoders:
        byte_of = {char: byte for byte, char in enumerate(_byte_level_alphabet())}
        texts = [bytes(byte_of[c] for c in piece if c in byte_of) for piece in pieces]
    else:
        space = decoders.get("Metaspace", {}).get("replacement", "\u2581")
        byte_fallback = "ByteFallback" in decoders
        texts = [_piece_bytes(piece, space, byte_fallback) for piece in pieces]
    texts = [b"" if i in special or piece is None else text
             for i, (piece, text) in enumerate(zip(pieces, texts))]
    return TokenVocabulary(tuple(texts), frozenset(special), eos_token_id,
                           _drops_first_space(tokenizer, texts))


def _decoder_steps(tokenizer) -> dict[str, dict]:
    """The decoder's steps by type, a Sequence flattened: {"Metaspace": {...}, ...}. A slow
    SentencePiece tokenizer (Marian's, which has no fast version) spells spaces as Metaspace does."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return {"Metaspace": {"type": "Metaspace", "replacement": "\u2581"}}
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    steps = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    return {step.get("type"): step for step in steps if step}


def _piece_bytes(piece: str | None, space: str, byte_fallback: bool) -> bytes:
    if piece is None:
        return b""
    match = BYTE_PIECE.fullmatch(piece)
    if match and byte_fallback:
        return bytes([int(match.group(1), 16)])
    return piece.replace(space, " ").encode()


def _byte_level_alphabet() -> list[str]:
    """GPT-2's byte -> printable character table (index = byte) that ByteLevel pieces are spelt in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, shift = [], 0
    for byte in range(256):
        if byte in printable:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + shift))
            shift += 1
    return chars


def _drops_first_space(tokenizer, texts: list[bytes]) -> bool:
    """Whether decoding a token that writes " word" alone prints "word"."""
    for token_id, text in enumerate(texts):
        if text.startswith(b" ") and len(text) > 1 and text[1:2].isalpha():
            return tokenizer.decode([token_id]) == text[1:].decode(errors="replace")
    return False
