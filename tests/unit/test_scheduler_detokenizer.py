"""Incremental detokenization and stop-sequence holdback, on fake tokenizers."""
from __future__ import annotations

import random

import pytest

from scheduler.detokenizer import IncrementalDetokenizer
from tests.unit.fakes import ByteTokenizer, MetaspaceTokenizer


def stream(tokenizer, ids: list[int], stop: tuple[str, ...] = ()) -> tuple[list[str], bool]:
    """Feed ids one at a time, the last call final; return the pieces sent and whether it stopped."""
    detok = IncrementalDetokenizer(tokenizer.decode, stop)
    pieces = []
    for n in range(1, len(ids) + 1):
        pieces.append(detok.step(ids[:n], final=n == len(ids)))
        if detok.stopped:
            break
    return pieces, detok.stopped


def random_byte_chunks(rng: random.Random, text: str) -> list[bytes]:
    data = text.encode("utf-8")
    chunks, i = [], 0
    while i < len(data):
        n = rng.randint(1, 4)
        chunks.append(data[i:i + n])
        i += n
    return chunks


TEXTS = ["héllo wörld", "日本語のテキスト", "emoji 😀👍🏽 mixed ascii", "a\nb\r\n\tc", "ﬁ€∑ ok",
         "🇫🇷 flags and zwj 👩‍👩‍👧"]


@pytest.mark.parametrize("text", TEXTS)
def test_joined_pieces_equal_full_decode_with_characters_split_across_tokens(text):
    rng = random.Random(text)
    for _ in range(20):
        tok = ByteTokenizer()
        ids = tok.ids(random_byte_chunks(rng, text))
        pieces, _ = stream(tok, ids)
        assert "".join(pieces) == tok.decode(ids) == text
        assert not any("\ufffd" in p for p in pieces)  # never a half character on the wire


def test_incomplete_character_is_held_until_completed():
    tok = ByteTokenizer()
    ids = tok.ids([b"a", b"\xf0\x9f", b"\x98", b"\x80", b"b"])  # "a😀b", the emoji over 3 tokens
    pieces, _ = stream(tok, ids)
    assert pieces == ["a", "", "", "😀", "b"]


def test_incomplete_character_at_the_end_is_flushed_as_decode_gives_it():
    tok = ByteTokenizer()
    ids = tok.ids([b"ok", b"\xe2\x82"])  # generation cut off (length) inside "€"
    pieces, _ = stream(tok, ids)
    assert "".join(pieces) == tok.decode(ids) == "ok\ufffd"


def test_sentencepiece_spaces_survive_token_by_token_decoding():
    tok = MetaspaceTokenizer()
    ids = tok.ids(["\u2581The", "\u2581quick", "\u2581br", "own", "\u2581fox", "."])
    pieces, _ = stream(tok, ids)
    assert pieces == ["The", " quick", " br", "own", " fox", "."]
    assert "".join(pieces) == tok.decode(ids) == "The quick brown fox."


@pytest.mark.parametrize("split", [["He", "llo STO", "P now"],  # stop over 2 tokens
                                   ["Hello S", "T", "OP now"],  # stop over 3 tokens
                                   ["Hello ", "STOP", " now"]])  # stop exactly one token
def test_stop_sequence_split_over_tokens_is_never_sent(split):
    tok = MetaspaceTokenizer()
    pieces, stopped = stream(tok, tok.ids(split), stop=("STOP",))
    assert stopped
    assert "".join(pieces) == "Hello "


def test_text_is_held_only_while_it_may_start_a_stop_sequence():
    tok = MetaspaceTokenizer()
    ids = tok.ids(["ab", "<e", "n", "x", "d>"])  # "<en" looks like "<end>", then "x" breaks it
    pieces, stopped = stream(tok, ids, stop=("<end>",))
    assert pieces == ["ab", "", "", "<enx", "d>"]
    assert not stopped


def test_false_start_followed_by_a_real_stop():
    tok = MetaspaceTokenizer()
    ids = tok.ids(["x<", "e", "<en", "d>", "tail"])
    pieces, stopped = stream(tok, ids, stop=("<end>",))
    assert stopped
    assert "".join(pieces) == "x<e"


def test_stop_at_the_very_first_token():
    tok = MetaspaceTokenizer()
    pieces, stopped = stream(tok, tok.ids(["###", "more"]), stop=("#",))
    assert stopped and pieces == [""]


def test_earliest_of_several_stop_sequences_wins():
    tok = MetaspaceTokenizer()
    pieces, stopped = stream(tok, tok.ids(["one two three"]), stop=("three", "two"))
    assert stopped and pieces == ["one "]


def test_held_text_is_sent_when_the_request_ends_without_a_stop():
    tok = MetaspaceTokenizer()
    ids = tok.ids(["done", "<en"])
    pieces, stopped = stream(tok, ids, stop=("<end>",))
    assert not stopped
    assert pieces == ["done", "<en"]


def test_stop_sequence_spanning_a_split_multibyte_character():
    tok = ByteTokenizer()
    ids = tok.ids([b"caf", b"\xc3", b"\xa9!", b" more"])  # stop "é!" arrives half a char at a time
    pieces, stopped = stream(tok, ids, stop=("é!",))
    assert stopped and "".join(pieces) == "caf"


def test_no_stop_sequences_means_no_holdback():
    tok = MetaspaceTokenizer()
    ids = tok.ids(["a", "<", "e"])
    assert stream(tok, ids)[0] == ["a", "<", "e"]
