"""Constrained decoding: outputs that match a regex or a JSON schema by construction.

A `GrammarCompiler` (one per generator model) compiles a pattern into an llguidance grammar over
the model's token texts (kernels/vocabulary.py) and caches it; each constrained sequence gets a
`Matcher`, advanced by every token it chooses. Inside the decode step `mask_logits` sets every
token the grammar does not allow next to -inf before the token is chosen, so the decoded text
always stays inside the grammar, and EOS is allowed only where the text is complete (and is the
only choice once nothing else may follow). docs/constrained-decoding.md says why llguidance.
"""
from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict

import numpy as np
import torch

from kernels.vocabulary import TokenVocabulary, token_vocabulary

MAX_NUM_CACHED = 64  # compiled grammars kept per model
PROBE_BUDGET = 256  # matcher states explored when checking that the vocabulary can write a pattern
PROBE_DEPTH = 24
# One JSON layout for every schema: T5 writes no newlines, and free whitespace invites runs of it.
JSON_LAYOUT = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False}


class GrammarError(ValueError):
    """A regex or JSON schema that cannot constrain this model; the message is for the user."""


class Matcher:
    """Where one sequence stands in its grammar."""

    def __init__(self, engine_matcher, vocab: TokenVocabulary, vocab_size: int):
        self._matcher = engine_matcher  # an llguidance.LLMatcher
        self._vocab, self.vocab_size = vocab, vocab_size  # vocab_size: the model's, >= the tokenizer's
        self.error: str | None = None  # set when the vocabulary could not continue the pattern

    def fork(self) -> "Matcher":
        """An independent matcher at the same place (a beam that splits in two)."""
        twin = Matcher(self._matcher.deep_copy(), self._vocab, self.vocab_size)
        twin.error = self.error
        return twin

    def advance(self, token_id: int) -> None:
        """Take the token the sequence chose (EOS included)."""
        if self.error is None and not self._matcher.consume_token(token_id):
            self.error = self._matcher.get_error() or f"token {token_id} does not continue the pattern"

    @property
    def is_finished(self) -> bool:
        """The text so far is a complete match: EOS may end it here."""
        return self.error is None and self._matcher.is_accepting()

    @property
    def only_eos_allowed(self) -> bool:
        """Nothing may follow: the next token is EOS."""
        return self.error is not None or self._matcher.is_stopped()

    def allowed(self) -> torch.Tensor:
        """[vocab_size] bool: the tokens that may come next."""
        bitmask = torch.zeros(1, _num_words(self.vocab_size), dtype=torch.int32)
        self.fill(bitmask, 0)
        if not bitmask[0].any():
            self.end_here(bitmask, 0)
        return _unpack(bitmask, self.vocab_size)[0]

    def fill(self, bitmask: torch.Tensor, row: int) -> None:
        """Write the allowed next tokens into bitmask[row] ([words] int32, bit i of word j: token
        32j+i). A row left all zero is a dead end: the caller ends the sequence with `end_here`."""
        if self.error is None:
            _fill(self._matcher, bitmask, row)
            if self._matcher.is_error():  # text the grammar forces that no token writes
                self.end_here(bitmask, row)
        else:
            self.end_here(bitmask, row)

    def end_here(self, bitmask: torch.Tensor, row: int) -> None:
        """No token the vocabulary has continues the text: allow only EOS, and say why."""
        self.error = self.error or self._matcher.get_error() or "the model's vocabulary cannot continue the pattern"
        eos_word, eos_bit = divmod(self._vocab.eos_token_id, 32)
        bitmask[row] = 0
        bitmask[row, eos_word] = (1 << eos_bit) if eos_bit < 31 else -(1 << 31)  # int32's sign bit


class CompiledGrammar:
    def __init__(self, engine_matcher, vocab: TokenVocabulary, vocab_size: int):
        self._pristine = engine_matcher  # never advanced; each sequence gets a copy
        self.vocab, self.vocab_size = vocab, vocab_size

    def matcher(self) -> Matcher:
        return Matcher(self._pristine.deep_copy(), self.vocab, self.vocab_size)


class GrammarCompiler:
    """Compiles patterns for one tokenizer; safe to call from the HTTP layer's threads and the
    engine's at once. Compiled grammars are cached by pattern (least recently used dropped)."""

    def __init__(self, tokenizer, eos_token_id: int, vocab_size: int):
        import llguidance

        self._llguidance = llguidance
        self.vocab = token_vocabulary(tokenizer, eos_token_id)
        # Ids past the tokenizer's (T5 pads its embedding to a multiple of 128) are never allowed.
        self.vocab_size = max(vocab_size, self.vocab.num_tokens)
        table = _TokenTable(self.vocab, self.vocab_size)
        self._tokenizer = llguidance.LLTokenizer(llguidance.TokenizerWrapper(table))
        self._cache: OrderedDict[tuple[str, str], CompiledGrammar] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def for_model(cls, model) -> "GrammarCompiler":
        """For a kernels.loader.Seq2SeqModel."""
        return cls(model.tokenizer, model.eos_token_id, model.config.vocab_size)

    def compile(self, regex: str | None = None, json_schema: str | None = None) -> CompiledGrammar:
        """Compile a regex, or a JSON schema given as JSON text. Raises GrammarError."""
        if (regex is None) == (json_schema is None):
            raise GrammarError("give exactly one of regex_string and json_schema")
        key = ("regex", regex) if regex is not None else ("json_schema", json_schema)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        compiled = CompiledGrammar(self._compile(*key), self.vocab, self.vocab_size)
        _check_writable(compiled, key[0])
        with self._lock:
            self._cache[key] = compiled
            while len(self._cache) > MAX_NUM_CACHED:
                self._cache.popitem(last=False)
        return compiled

    def matcher(self, regex: str | None = None, json_schema: str | None = None) -> Matcher | None:
        """A fresh matcher for a sequence with these constraints; None when it has none."""
        if regex is None and json_schema is None:
            return None
        return self.compile(regex, json_schema).matcher()

    def _compile(self, kind: str, source: str):
        name = "regex_string" if kind == "regex" else "json_schema"
        # T5's decoder drops the first token's leading space: the grammar must have it written.
        first = '" " ' if self.vocab.drops_first_space else ""
        if kind == "regex":
            body = f"/{self._llguidance.regex_to_lark(source)}/"  # "/" escaped for a lark literal
        else:
            body = "%json " + json.dumps({**_parse_schema(source), "x-guidance": JSON_LAYOUT})
        grammar = self._llguidance.LLMatcher.grammar_from_lark(f"start: {first}{body}")
        error = self._llguidance.LLMatcher.validate_grammar(grammar, self._tokenizer)
        if error:
            raise GrammarError(f"{name} cannot be compiled: {_engine_message(error)}")
        matcher = self._llguidance.LLMatcher(self._tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise GrammarError(f"{name} cannot be compiled: {_engine_message(matcher.get_error())}")
        return matcher


class _TokenTable:
    """The vocabulary as llguidance.TokenizerWrapper reads it: token bytes, special ones (and the
    model's padding ids) marked with a leading 0xFF, and a tokenizer for text the grammar forces."""

    def __init__(self, vocab: TokenVocabulary, vocab_size: int):
        self.eos_token_id, self.bos_token_id = vocab.eos_token_id, None
        self.special_token_ids = [i for i in range(vocab_size) if i in vocab.special_ids or i >= vocab.num_tokens]
        special = set(self.special_token_ids)
        self.tokens = [b"\xff<special_%d>" % i if i in special else vocab.texts[i] for i in range(vocab_size)]
        self._id_of: dict[bytes, int] = {}
        for token_id, text in enumerate(self.tokens):
            if text and token_id not in special:
                self._id_of.setdefault(text, token_id)
        self._longest = max(map(len, self._id_of))

    def __call__(self, text: bytes) -> list[int]:
        """Longest-match tokens for text, up to the first byte that no token writes."""
        ids, start = [], 0
        while start < len(text):
            end = next((end for end in range(min(len(text), start + self._longest), start, -1)
                        if text[start:end] in self._id_of), start)
            if end == start:
                break
            ids.append(self._id_of[text[start:end]])
            start = end
        return ids


def mask_logits(logits: torch.Tensor, rows: list[int], matchers: list[Matcher]) -> torch.Tensor | None:
    """Set to -inf, in place, every token that matchers[i] does not allow next in logits[rows[i]].

    logits: [n, vocab_size]; vocab_size may exceed the tokenizer's (those ids are never allowed).
    Returns the masked rows [len(rows), vocab_size] as they are now, for `unban_grammar_tokens`."""
    if not rows:
        return None
    bitmask = torch.zeros(len(rows), _num_words(matchers[0].vocab_size), dtype=torch.int32)
    for i, matcher in enumerate(matchers):
        matcher.fill(bitmask, i)
    for i in (~bitmask.any(dim=1)).nonzero().flatten().tolist():
        matchers[i].end_here(bitmask, i)
    index = torch.tensor(rows, device=logits.device)
    banned = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)  # [n, vocab_size]
    banned[index] = ~_unpack(bitmask, logits.shape[1]).to(logits.device)
    logits.masked_fill_(banned, float("-inf"))
    return logits[index]


def unban_grammar_tokens(logits: torch.Tensor, rows: list[int], masked: torch.Tensor | None) -> None:
    """The grammar outranks the penalties: a row whose penalties (min_new_tokens, no-repeat
    n-grams) banned every token its grammar allows goes back to its grammar-masked logits."""
    if not rows:
        return
    best = logits.amax(dim=-1)  # [n]; -inf where every token is banned
    for i, row in enumerate(rows):
        if best[row] == float("-inf"):
            logits[row] = masked[i]


def _fill(engine_matcher, bitmask: torch.Tensor, row: int) -> None:
    words = bitmask[row]
    engine_matcher.unsafe_compute_mask_ptr(words.data_ptr(), words.numel() * words.element_size())


def _unpack(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """[n, words] int32 on the CPU -> [n, vocab_size] bool (bit i of word j: token 32j+i)."""
    bits = np.unpackbits(bitmask.numpy().view(np.uint8), axis=1, bitorder="little")  # [n, 32 * words]
    return torch.from_numpy(bits[:, :vocab_size].astype(bool))


def _num_words(vocab_size: int) -> int:
    return (vocab_size + 31) // 32


def _engine_message(message: str) -> str:
    """llguidance's error, less its position in the lark text we built: the "error: ..." line of
    a regex error, or the first line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    detail = next((line[len("error: "):] for line in lines if line.startswith("error: ")), None)
    first = re.sub(r"^at \d+\(\d+\): ", "", lines[0]) if lines else "unknown error"
    return f"{first.rstrip(':')}: {detail}" if detail else first


def _parse_schema(source: str) -> dict:
    try:
        schema = json.loads(source)
    except ValueError as exc:
        raise GrammarError(f"json_schema is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise GrammarError("json_schema must be a JSON object")
    return schema


def _check_writable(compiled: CompiledGrammar, kind: str) -> None:
    """Refuse a pattern that the vocabulary provably cannot write (T5's has no '{', for one).

    A depth-first walk over the matcher's states, longest token texts first, within a budget: it
    stops at the first state where EOS is allowed. Only a walk that explored every branch without
    reaching one proves the pattern unwritable; an exhausted budget proves nothing."""
    vocab = compiled.vocab
    bitmask = torch.zeros(1, _num_words(compiled.vocab_size), dtype=torch.int32)
    longest_first = np.argsort([-len(text) for text in vocab.texts], kind="stable")
    budget = [PROBE_BUDGET]

    def can_finish(engine, depth: int) -> bool | None:
        budget[0] -= 1
        _fill(engine, bitmask, 0)
        if engine.is_error():  # text the grammar forces that no token writes
            return False
        allowed = _unpack(bitmask, vocab.num_tokens)[0].numpy()
        if allowed[vocab.eos_token_id]:
            return True
        if depth == 0 or budget[0] <= 0:
            return None
        proven = True
        for token_id in longest_first[allowed[longest_first]].tolist():
            if budget[0] <= 0:
                return None
            branch = engine.deep_copy()  # an llguidance matcher in error stays there: no rollback
            branch.consume_token(token_id)
            result = can_finish(branch, depth - 1)
            if result:
                return True
            proven = proven and result is False
        return False if proven else None

    if can_finish(compiled._pristine.deep_copy(), PROBE_DEPTH) is False:
        what = "regex_string" if kind == "regex" else "json_schema"
        written = b"".join(vocab.texts)
        missing = [c for c in '{}[]":' if c.encode() not in written]
        hint = f" (no token writes {' '.join(missing)})" if kind == "json_schema" and missing else ""
        raise GrammarError(f"the model's vocabulary cannot write any text that matches this {what}{hint}")
