"""The offline benchmark's workloads: a random model saved with its tokenizer, and seeded requests.

flan-t5-small: google/flan-t5-small's shape (6 heads, 32,128 ids) with a word-level tokenizer;
    inputs of 40-56 tokens, 64 requests.
long-prompt: issue 16's shape (d_model 512, 8+8 layers, d_ff 1024, 8 heads) with a 1,500-piece
    SentencePiece vocabulary trained here on generated English, so prompts of 25-40 words are
    about 100 tokens; 48 requests.
Both ask for exactly 16-128 new tokens per request (min_new_tokens = max_new_tokens). Neither model
can pick <pad> or <unk> (benchmarks.models.never_pad): greedy decoding of a random T5 otherwise
repeats <pad>, which makes every output alike and a stream text-less.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from benchmarks.models import FLAN_T5_SMALL, never_pad, save_random_t5
from benchmarks.offline_systems import BenchRequest, make_requests, run_hf, spread

LONG_PROMPT_T5 = dict(FLAN_T5_SMALL, vocab_size=1500, num_heads=8)
NUM_TEXT_WORDS = 10_000  # English words the generated text draws from, uniformly
SPM_TRAINING_SENTENCES = 4000


@dataclass
class Workload:
    name: str
    model_dir: Path
    requests: list[BenchRequest]
    batch_sizes: tuple[int, ...]  # static batch sizes of Hugging Face generate and CTranslate2
    texts: list[str] | None = None  # the prompts as text (long-prompt only)
    num_beams: int = 1  # beam search: the HF and CTranslate2 rows search as many beams
    run_hf: Callable = run_hf  # (model, requests, batch_size, name) -> SystemResult
    report: Callable | None = None  # (workload, threads) -> dict of figures besides the rows


def flan_t5_small(tmp: Path, seed: int, num_requests: int | None, quick: bool) -> Workload:
    num_requests = num_requests or (8 if quick else 64)
    model_dir = save_random_t5(tmp / "flan-t5-small", seed=seed)
    requests = make_requests(num_requests, FLAN_T5_SMALL["vocab_size"], seed=seed,
                             output_lens=(16, 32) if quick else (16, 128))
    return Workload("flan-t5-small", model_dir, requests, _batch_sizes((16, 64), num_requests))


def long_prompt(tmp: Path, seed: int, num_requests: int | None, quick: bool) -> Workload:
    num_requests = num_requests or (8 if quick else 48)
    model_dir = never_pad(save_random_t5(tmp / "long-prompt", seed=seed, **LONG_PROMPT_T5))
    tokenizer = save_spm_tokenizer(model_dir, seed)  # in place of the word-level one
    rng = random.Random(seed + 1)  # the tokenizer's training text drew from seed
    words = english_words()
    texts = [sentence(rng, words) for _ in range(num_requests)]
    num_tokens = spread(num_requests, (16, 32) if quick else (16, 128))
    rng.shuffle(num_tokens)
    requests = [BenchRequest(tokenizer(text)["input_ids"], n) for text, n in zip(texts, num_tokens)]
    return Workload("long-prompt", model_dir, requests, _batch_sizes((16, 48), num_requests), texts)


WORKLOADS = {"flan-t5-small": flan_t5_small, "long-prompt": long_prompt}


def english_words() -> list[str]:
    from wordfreq import top_n_list

    return [w for w in top_n_list("en", NUM_TEXT_WORDS) if w.isalpha()]


def sentence(rng: random.Random, words: list[str]) -> str:
    """25-40 words drawn uniformly, so most of them take several pieces of a small vocabulary."""
    return " ".join(rng.choices(words, k=rng.randint(25, 40))).capitalize() + "."


def save_spm_tokenizer(path: Path, seed: int, vocab_size: int = 1500):
    """Train a unigram SentencePiece model on generated sentences; save it as a T5 tokenizer
    (pad 0, EOS 1, unk 2, EOS appended) and return it loaded."""
    import sentencepiece
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(seed)
    words = english_words()
    corpus = [sentence(rng, words) for _ in range(SPM_TRAINING_SENTENCES)]
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=proto, vocab_size=vocab_size,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1,
        character_coverage=1.0, minloglevel=2)
    pieces = sentencepiece.SentencePieceProcessor(model_proto=proto.getvalue())
    vocab = [(pieces.id_to_piece(i), pieces.get_score(i)) for i in range(pieces.get_piece_size())]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=512)
    path.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(path)
    return fast


def _batch_sizes(sizes: tuple[int, ...], num_requests: int) -> tuple[int, ...]:
    kept = tuple(s for s in sizes if s <= num_requests)
    return kept or (num_requests,)

