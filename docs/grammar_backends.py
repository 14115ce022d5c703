"""Compare grammar engines (llguidance, xgrammar, outlines-core) on T5 SentencePiece vocabularies.

For each engine, vocabulary and pattern: the time to prepare the vocabulary, to compile the
pattern, and per decode step the time to fill one sequence's allowed-token bitmask and to advance
the matcher by the chosen token. Tokens are chosen by argmax over seeded random logits under the
mask, so every engine walks the same path when their masks agree (the script counts the steps
where they do not). All engines read the same token texts (kernels/vocabulary.py), so T5's
literal `<0xNN>` pieces and its dropped first space are handled the same way.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python docs/grammar_backends.py --json artifacts/grammar_backends.json

xgrammar is optional (it pulls triton); install it beside the venv to include it:
    .venv/bin/pip install --target /tmp/xgr --no-deps xgrammar apache-tvm-ffi; PYTHONPATH=.:/tmp/xgr ...
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from kernels.vocabulary import TokenVocabulary, token_vocabulary

REWRITER = Path(__file__).resolve().parent.parent / "models" / "feedback-rewriter"
# What each vocabulary is asked to write. The rewriter's vocabulary has no digits, quotes or
# braces (its training text had none), so its regex uses letters and the punctuation it has.
REGEX = {"rewriter-16k": r"(Yes|No): [a-z]+( [a-z]+){2,8}\.", "t5-32k": r"[0-9]{3}-[a-z]+( [a-z]+){0,6}"}
SCHEMA = json.dumps({"type": "object", "properties": {
    "label": {"enum": ["praise", "criticism", "question"]},
    "score": {"type": "integer", "minimum": 0, "maximum": 100},
    "note": {"type": "string", "maxLength": 40}}, "required": ["label", "score", "note"],
    "additionalProperties": False})
# Compile time only: six strings of up to 100 characters, an integer and an array of enums.
BIG_SCHEMA = json.dumps({"type": "object", "properties": {
    **{f"field{i}": {"type": "string", "maxLength": 100} for i in range(6)},
    "n": {"type": "integer"}, "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}}},
    "required": [f"field{i}" for i in range(6)]})
NUM_STEPS = 48


def t5_32k_tokenizer(extra_ids: int = 100):
    """A T5-shaped SentencePiece unigram tokenizer: the rewriter's 16k pieces, then English words
    by frequency (wordfreq) to 32,000 pieces, digits and JSON punctuation included, plus T5's 100
    sentinel tokens; the model's vocab_size would be 32,128."""
    import wordfreq
    from tokenizers import AddedToken, Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads((REWRITER / "tokenizer.json").read_text())
    pieces = spec["model"]["vocab"]
    known = {p for p, _ in pieces}
    extra = [c for c in '0123456789{}[]"_' if c not in known] + ["▁" + c for c in '0123456789{"']
    words = ["▁" + w for w in wordfreq.top_n_list("en", 40000) if "▁" + w not in known]
    for rank, piece in enumerate(extra + words):
        if len(pieces) == 32000:
            break
        if piece not in known:
            pieces.append([piece, -8.0 - rank / 4000])
            known.add(piece)
    tokenizer = Tokenizer.from_str(json.dumps(spec))
    tokenizer.add_special_tokens([AddedToken(f"<extra_id_{i}>", special=True) for i in range(extra_ids)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


class Engine:
    name = module = ""
    lib = None

    @classmethod
    def load(cls) -> None:
        """Import the engine before anything is timed."""
        import importlib

        cls.lib = importlib.import_module(cls.module)


class LLGuidance(Engine):
    """The path kernels/constrained.py ships: its token table, lark grammar and matcher copies."""
    name = module = "llguidance"

    def __init__(self, tokenizer, vocab: TokenVocabulary, vocab_size: int):
        from kernels.constrained import GrammarCompiler

        self.compiler = GrammarCompiler(tokenizer, vocab.eos_token_id, vocab_size)

    def compile(self, kind: str, spec: str, prefix: str):
        return self.compiler._compile(kind, spec)  # the prefix is the compiler's own business

    def matcher(self, compiled):
        return compiled.deep_copy()

    def fill(self, matcher, bitmask: torch.Tensor, row: int) -> None:
        from kernels.constrained import _fill

        _fill(matcher, bitmask, row)

    def advance(self, matcher, token_id: int) -> None:
        assert matcher.consume_token(token_id), matcher.get_error()


class XGrammar(Engine):
    name = module = "xgrammar"

    def __init__(self, tokenizer, vocab: TokenVocabulary, vocab_size: int):
        xgrammar = self.lib
        info = xgrammar.TokenizerInfo(list(vocab.texts), xgrammar.VocabType.RAW, vocab_size=vocab_size,
                                      stop_token_ids=[vocab.eos_token_id])
        self.compiler = xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)

    def compile(self, kind: str, spec: str, prefix: str):
        g = self.lib.Grammar
        body = g.from_regex(spec) if kind == "regex" else g.from_json_schema(
            spec, any_whitespace=False, separators=(", ", ": "))
        return self.compiler.compile_grammar(g.concat(g.from_regex(prefix), body) if prefix else body)

    def matcher(self, compiled):
        return self.lib.GrammarMatcher(compiled)

    def fill(self, matcher, bitmask: torch.Tensor, row: int) -> None:
        matcher.fill_next_token_bitmask(bitmask, row)

    def advance(self, matcher, token_id: int) -> None:
        assert matcher.accept_token(token_id)


class OutlinesCore(Engine):
    name, module = "outlines-core", "outlines_core"

    def __init__(self, tokenizer, vocab: TokenVocabulary, vocab_size: int):
        outlines_core = self.lib
        by_text: dict[bytes, list[int]] = {}
        for token_id, text in enumerate(vocab.texts):
            if text and token_id not in vocab.special_ids:
                by_text.setdefault(text, []).append(token_id)
        self.vocabulary = outlines_core.Vocabulary(vocab.eos_token_id, by_text)

    def compile(self, kind: str, spec: str, prefix: str):
        from outlines_core.json_schema import build_regex_from_schema

        regex = spec if kind == "regex" else build_regex_from_schema(spec, whitespace_pattern=" ?")
        return self.lib.Index(prefix + f"(?:{regex})", self.vocabulary)

    def matcher(self, compiled):
        return self.lib.Guide(compiled)

    def fill(self, matcher, bitmask: torch.Tensor, row: int) -> None:
        view = bitmask[row]
        matcher.write_mask_into(view.data_ptr(), view.numel(), view.element_size())

    def advance(self, matcher, token_id: int) -> None:
        matcher.advance(token_id, return_tokens=False)


def allowed(bitmask_row: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """[words] int32 bitmask -> [vocab_size] bool."""
    bits = (bitmask_row.unsqueeze(-1) >> torch.arange(32, dtype=torch.int32)) & 1
    return bits.flatten()[:vocab_size].bool()


def walk(engine, compiled, vocab_size: int, eos: int, seed: int) -> dict:
    """NUM_STEPS steps (or until only EOS is left) of argmax over seeded random logits."""
    matcher = engine.matcher(compiled)
    bitmask = torch.zeros(1, (vocab_size + 31) // 32, dtype=torch.int32)
    generator = torch.Generator().manual_seed(seed)
    fill_us, advance_us, tokens = [], [], []
    for _ in range(NUM_STEPS):
        start = time.perf_counter()
        engine.fill(matcher, bitmask, 0)
        fill_us.append((time.perf_counter() - start) * 1e6)
        mask = allowed(bitmask[0], vocab_size)
        logits = torch.randn(vocab_size, generator=generator).masked_fill(~mask, float("-inf"))
        token = int(logits.argmax())
        if not mask[token] or token == eos:
            break
        tokens.append(token)
        start = time.perf_counter()
        engine.advance(matcher, token)
        advance_us.append((time.perf_counter() - start) * 1e6)
    return {"fill_us": fill_us, "advance_us": advance_us, "tokens": tokens}


def measure(engine_class, tokenizer, vocab: TokenVocabulary, vocab_size: int, name: str,
            seeds: range) -> list[dict]:
    engine_class.load()
    start = time.perf_counter()
    engine = engine_class(tokenizer, vocab, vocab_size)
    prepare_s = time.perf_counter() - start
    prefix = " " if vocab.drops_first_space else ""
    rows = []
    for kind, spec in (("regex", REGEX[name]), ("json_schema", SCHEMA)):
        row = {"engine": engine.name, "vocab": name, "kind": kind, "prepare_s": prepare_s}
        start = time.perf_counter()
        try:
            compiled = engine.compile(kind, spec, prefix)
        except Exception as exc:  # one engine's refusal is a result, not a crash
            rows.append({**row, "error": f"{type(exc).__name__}: {str(exc)[:120]}"})
            continue
        row["compile_ms"] = (time.perf_counter() - start) * 1e3
        if kind == "json_schema":
            start = time.perf_counter()
            engine.compile(kind, BIG_SCHEMA, prefix)
            row["big_schema_compile_ms"] = (time.perf_counter() - start) * 1e3
        walks = [walk(engine, compiled, vocab_size, vocab.eos_token_id, seed) for seed in seeds]
        row["first_mask_us"] = statistics.median(w["fill_us"][0] for w in walks)
        fills = sorted(us for w in walks for us in w["fill_us"][1:]) or [0.0]
        advances = [us for w in walks for us in w["advance_us"]]
        row.update(steps=len(fills), fill_us_median=statistics.median(fills),
                   fill_us_p90=fills[int(0.9 * (len(fills) - 1))],
                   advance_us_median=statistics.median(advances) if advances else 0.0,
                   paths=[w["tokens"] for w in walks])
        rows.append(row)
    return rows


RUNNER_REGEXES = {"free": None,
                  "counted": r"[a-z]+( [a-z]+){40,80}",  # no EOS within 30 steps; llguidance's worst case
                  "open": r"[a-z]+( [a-z]+)*"}  # EOS allowed after any word


def runner_steps(num_seqs: int, num_steps: int, num_rounds: int = 3) -> dict[str, float]:
    """ms per decode step of the rewriter (fp32, one thread) with every row free, and with every
    row under each regex: what the masks add to a real step (greedy; a row that chose EOS under
    "open" goes on with EOS-only masks). Runs alternate; each figure is the best of num_rounds."""
    from kernels.loader import load_generator
    from kernels.runner import ModelRunner
    from scheduler.output import PrefillInput, SchedulerOutput
    from scheduler.sampling_params import SamplingParams

    generator = load_generator(REWRITER)
    prompt = generator.tokenizer("Make the following feedback constructive: your report was late again.")["input_ids"]
    best = {label: float("inf") for label in RUNNER_REGEXES}
    for _ in range(num_rounds):
        for label, regex in RUNNER_REGEXES.items():
            runner = ModelRunner(generator, max_num_seqs=num_seqs, max_len=num_steps + 2, max_input_len=64)
            params = SamplingParams(max_new_tokens=num_steps + 1, regex=regex)
            runner.execute(SchedulerOutput(prefill=[PrefillInput(str(i), i, prompt, params) for i in range(num_seqs)]))
            start = time.perf_counter()
            for _ in range(num_steps):
                runner.execute(SchedulerOutput(decode_slots=list(range(num_seqs))))
            best[label] = min(best[label], (time.perf_counter() - start) / num_steps * 1e3)
    return best


def main() -> None:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="save the rows here")
    parser.add_argument("--walks", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    vocabularies = {"rewriter-16k": (AutoTokenizer.from_pretrained(REWRITER), 16000),
                    "t5-32k": (t5_32k_tokenizer(), 32128)}
    engines = [LLGuidance, XGrammar, OutlinesCore]
    rows = []
    for name, (tokenizer, vocab_size) in vocabularies.items():
        vocab = token_vocabulary(tokenizer, tokenizer.eos_token_id)
        for engine_class in engines:
            try:
                rows += measure(engine_class, tokenizer, vocab, vocab_size, name, range(args.walks))
            except ImportError as exc:
                print(f"skipping {engine_class.name}: {exc}")
    print(f"{'engine':14} {'vocab':13} {'kind':12} {'prepare s':>9} {'compile ms':>10} {'1st mask us':>11} "
          f"{'mask us p50':>11} {'p90':>7} {'advance us':>10} {'steps':>5} same-path  big-schema compile ms")
    for row in rows:
        if "error" in row:
            print(f"{row['engine']:14} {row['vocab']:13} {row['kind']:12} {row['prepare_s']:9.2f}  {row['error']}")
            continue
        reference = next(r for r in rows if r["vocab"] == row["vocab"] and r["kind"] == row["kind"] and "paths" in r)
        same = row["paths"] == reference["paths"]
        print(f"{row['engine']:14} {row['vocab']:13} {row['kind']:12} {row['prepare_s']:9.2f} "
              f"{row['compile_ms']:10.1f} {row['first_mask_us']:11.0f} {row['fill_us_median']:11.0f} {row['fill_us_p90']:7.0f} "
              f"{row['advance_us_median']:10.0f} {row['steps']:5d} {str(same):9}  "
              f"{row.get('big_schema_compile_ms', float('nan')):.0f}")
    steps = {n: runner_steps(n, 30) for n in (1, 16)}
    for n, ms in steps.items():
        print(f"rewriter decode step, {n:2d} rows: {ms['free']:.2f} ms free; every row under "
              f"{RUNNER_REGEXES['counted']}: {ms['counted']:.2f} ms, under {RUNNER_REGEXES['open']}: {ms['open']:.2f} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"engines": [{k: v for k, v in r.items() if k != "paths"} for r in rows],
                                         "runner_steps_ms": steps}, indent=1))


if __name__ == "__main__":
    main()
