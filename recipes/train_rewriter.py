"""Fine-tune a rewriter on `context,negative,constructive` pairs.

    python -m recipes.train_rewriter --data data/offline/rewrite --out models/feedback-rewriter

With `--init DIR` it fine-tunes a local seq2seq folder (T5 / Flan-T5, or a BERT2BERT saved here).
`--family bert2bert` starts a BERT2BERT from the MiniLM weights (`recipes.warm_start`). Otherwise it trains a small T5
from scratch, with a SentencePiece tokenizer learned from the training texts plus common English
words (so real input is not all unknown pieces); `--copy-steps N` first has it practise writing back
random English words, so it copies the subject of a criticism it has never seen. Saves fp16
safetensors in Hugging Face layout.

`--pick-every N` keeps the best of the checkpoints taken every N steps (and the starting and final
weights) instead of the last: best at rewriting `--pick-rows` validation pairs from the end of
validation.csv (the evaluation reports the first ones) so that the rewrite keeps the subject and the
problem, is not garbled, says no phrase twice in a row, breaks no word and claims nothing its input
and context lack.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, T5Config, T5ForConditionalGeneration

from recipes.datasets import read_csv
from recipes.rewrite_eval import rewrite
from recipes.rewrite_checks import rewrite_checks
from recipes.training import pad, save_tokenizer, seed_everything, train
from recipes.warm_start import bert2bert_from_minilm
from takeoff.feedback.task import rewrite_prompt


def build_tokenizer(texts: list[str], out_dir: Path, vocab_size: int, num_common_words: int):
    """Train a unigram SentencePiece model; load it as a T5 tokenizer with no extra ids."""
    import sentencepiece as spm
    from wordfreq import top_n_list
    words = top_n_list("en", num_common_words)
    corpus = texts + words + [w.capitalize() for w in words[:5000]]
    # Built and loaded in a scratch folder: loading from `out_dir` would pick up an older model's
    # tokenizer.json there. save_pretrained writes the new one into `out_dir` later.
    with tempfile.TemporaryDirectory() as tmp:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(corpus), model_prefix=f"{tmp}/spiece", vocab_size=vocab_size, model_type="unigram",
            pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=True, character_coverage=0.9995,
            input_sentence_size=len(corpus), shuffle_input_sentence=True, minloglevel=2,
            normalization_rule_name="nmt_nfkc")
        (Path(tmp) / "tokenizer_config.json").write_text(json.dumps(
            {"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "eos_token": "</s>", "pad_token": "<pad>",
             "unk_token": "<unk>", "model_max_length": 512}))
        tokenizer = AutoTokenizer.from_pretrained(tmp)
        tokenizer.save_pretrained(out_dir)
    # transformers silently builds a few-token vocabulary when it mis-reads the model file.
    assert len(tokenizer) == vocab_size, f"tokenizer has {len(tokenizer)} tokens, expected {vocab_size}"
    assert tokenizer.pad_token_id == 0 and tokenizer.eos_token_id == 1
    return tokenizer


def small_t5(vocab_size: int, d_model: int, num_layers: int) -> T5ForConditionalGeneration:
    config = T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=32, num_heads=d_model // 32,
                      d_ff=d_model * 3, num_layers=num_layers, num_decoder_layers=num_layers,
                      feed_forward_proj="gated-gelu", tie_word_embeddings=True, dropout_rate=0.05,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return T5ForConditionalGeneration(config)


def copy_rows(tokenizer, num_rows: int, seed: int, sentences: list[str] = (), sentence_share: float = 0.0,
              num_words: int = 30000) -> list[list[int]]:
    """Token ids of 1-5 random common English words each: a model trained to write these back learns
    to copy words it has never seen in a feedback pair, which is what keeping the subject needs.
    `sentence_share` of the rows are instead a run of 3-16 words from one of `sentences`, with one word
    in three swapped for a random English word: copying a phrase as people write it, in their words."""
    from wordfreq import top_n_list
    words = [w for w in top_n_list("en", num_words)[100:] if w.isalpha()]
    rng = random.Random(seed)

    def random_words() -> str:
        # One word in five capitalised: names and sentence starts are split into different pieces.
        return " ".join(w.capitalize() if rng.random() < 0.2 else w for w in rng.sample(words, rng.randint(1, 5)))

    def phrase() -> str:
        tokens = rng.choice(sentences).split()
        start = rng.randrange(max(1, len(tokens) - 2))
        run = tokens[start:start + rng.randint(3, 16)]
        return " ".join(rng.choice(words) if rng.random() < 1 / 3 and t.isalpha() else t for t in run)
    texts = [phrase() if sentences and rng.random() < sentence_share else random_words() for _ in range(num_rows)]
    return tokenizer(texts, truncation=True, max_length=40)["input_ids"]


def pretrain_copying(model, tokenizer, args) -> None:
    sentences = [r["sentence"] for r in read_csv(args.copy_sentences)] if args.copy_sentences else []
    rows = copy_rows(tokenizer, args.copy_steps * args.copy_batch_size, args.seed, sentences, args.copy_sentence_share)
    targets = decoder_targets(tokenizer, rows)
    train(model, lambda idx: seq2seq_loss(model, rows, targets, idx), len(rows), num_epochs=1,
          batch_size=args.copy_batch_size, lr=args.copy_lr, seed=args.seed, bf16=args.bf16, desc="copying",
          lengths=[len(r) for r in rows])


def encode_pairs(tokenizer, rows: list[dict], max_input_len: int, max_target_len: int):
    prompts = [rewrite_prompt(r["context"], r["negative"]) for r in rows]
    inputs = tokenizer(prompts, truncation=True, max_length=max_input_len)["input_ids"]
    targets = tokenizer([r["constructive"] for r in rows], truncation=True, max_length=max_target_len)["input_ids"]
    return inputs, decoder_targets(tokenizer, targets)


def decoder_targets(tokenizer, rows: list[list[int]]) -> list[list[int]]:
    """A BERT tokenizer starts every text with [CLS]; the decoder starts from it, so labels must not."""
    if tokenizer.cls_token_id is None:
        return rows
    return [row[1:] if row[0] == tokenizer.cls_token_id else row for row in rows]


def seq2seq_loss(model, inputs, targets, indices: list[int]) -> torch.Tensor:
    input_ids = pad([inputs[i] for i in indices], 0)    # [batch, src_len]
    labels = pad([targets[i] for i in indices], -100)   # [batch, tgt_len]
    return model(input_ids=input_ids, attention_mask=input_ids.ne(0), labels=labels).loss


@torch.no_grad()
def validation_loss(model, inputs, targets, batch_size: int = 64) -> float:
    total, count = 0.0, 0
    for start in range(0, len(inputs), batch_size):
        indices = list(range(start, min(start + batch_size, len(inputs))))
        total += seq2seq_loss(model, inputs, targets, indices).item() * len(indices)
        count += len(indices)
    return total / max(1, count)


class BestCheckpoint:
    """Scores the model's greedy rewrites of held-out pairs at each call; keeps the best weights.

    A small rewriter trained from scratch swings from one checkpoint to the next far more than its
    validation loss shows: one build stuttered in 14% of held-out rewrites at the end of its first pass
    and in 45% 150 steps later. The score is the share of clean rewrites: the subject and the problem
    kept, not garbled (`takeoff.feedback.fluency`), no phrase said twice in a row, no broken word, no
    claim its input and context lack. A tie goes to the later checkpoint.
    """

    def __init__(self, model, tokenizer, rows: list[dict]):
        self.model, self.tokenizer, self.rows = model, tokenizer, rows
        self.history: list[dict] = []
        self.best: dict | None = None
        self.best_state: dict[str, torch.Tensor] = {}

    def __call__(self, step: int) -> None:
        checks = rewrite_checks(self.rows, rewrite(self.model, self.tokenizer, self.rows))
        n = len(self.rows)
        clean = [keep and problem and not any(flaws) for keep, problem, *flaws in
                 zip(checks["keep"], checks["problem"], checks["stutter"], checks["broken"], checks["garbled"],
                     checks["invented"])]
        figures = dict(step=step, clean=sum(clean) / n, **{name: sum(flags) / n for name, flags in checks.items()})
        self.history.append({k: round(v, 4) for k, v in figures.items()})
        tqdm.write("step {step}: clean {clean:.3f}, keeps the subject {keep:.3f}, keeps the problem {problem:.3f}, "
                   "garbled {garbled:.3f}, stutters {stutter:.3f}, broken word {broken:.3f}, "
                   "invents a claim {invented:.3f}".format(**figures))
        if self.best is None or figures["clean"] >= self.best["clean"]:
            self.best = figures
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore(self) -> dict:
        self.model.load_state_dict(self.best_state)
        return dict(picked_step=self.best["step"], pick_rows=len(self.rows), checkpoints=self.history)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    seed_everything(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_rows = read_csv(args.data / "train.csv")[:args.max_train_rows]
    all_val_rows = read_csv(args.data / "validation.csv")
    val_rows = all_val_rows[:args.num_validation_rows]
    tokenizer, model = load_start(args, train_rows)
    if args.copy_steps and not args.init:
        pretrain_copying(model, tokenizer, args)
    inputs, targets = encode_pairs(tokenizer, train_rows, args.max_input_len, args.max_target_len)
    val_inputs, val_targets = encode_pairs(tokenizer, val_rows, args.max_input_len, args.max_target_len)
    hooks = [(args.checkpoint_every, lambda step: save(model, tokenizer, args.out, dict(step=step, partial=True)))]
    picker = None
    if args.pick_every:
        picker = BestCheckpoint(model, tokenizer, all_val_rows[-args.pick_rows:])
        hooks.append((args.pick_every, picker))
        if args.init:
            picker(0)
    losses = train(model, lambda idx: seq2seq_loss(model, inputs, targets, idx), len(inputs),
                   num_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr or (3e-4 if args.init else 1e-3),
                   seed=args.seed, bf16=args.bf16, desc="rewriter", hooks=hooks,
                   # Grouped by target length first: decoder tokens cost most (the output layer).
                   lengths=[(len(t), len(i)) for i, t in zip(inputs, targets)])
    summary = dict(num_train_rows=len(inputs), num_steps=len(losses), epochs=args.epochs, seed=args.seed,
                   copy_steps=0 if args.init else args.copy_steps, family=args.family)
    if picker:
        picker(len(losses))
        summary.update(picker.restore(), pick_every=args.pick_every)
        print(f"kept the weights of step {summary['picked_step']}")
    val_loss = validation_loss(model, val_inputs, val_targets)
    print(f"final train loss {sum(losses[-50:]) / len(losses[-50:]):.3f}, validation loss {val_loss:.3f}")
    save(model, tokenizer, args.out, dict(validation_loss=round(val_loss, 4), **summary))


def load_start(args, train_rows: list[dict]):
    """(tokenizer, model) to train: --init, a BERT2BERT from MiniLM, or a small T5 from nothing; with
    the decoding settings asked for in its generation_config."""
    if args.init:
        tokenizer = AutoTokenizer.from_pretrained(args.init)
        model = AutoModelForSeq2SeqLM.from_pretrained(args.init, dtype=torch.float32)
    elif args.family == "bert2bert":
        tokenizer, model = bert2bert_from_minilm()
    else:
        texts = [rewrite_prompt(r["context"], r["negative"]) for r in train_rows] + [r["constructive"] for r in train_rows]
        tokenizer = build_tokenizer(texts, args.out, args.vocab_size, args.num_common_words)
        model = small_t5(len(tokenizer), args.d_model, args.num_layers)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, vocabulary {len(tokenizer)}")
    for name in ("num_beams", "no_repeat_ngram_size", "length_penalty"):
        if getattr(args, name) is not None:
            setattr(model.generation_config, name, getattr(args, name))
    return tokenizer, model


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/offline/rewrite"), help="folder with train.csv, validation.csv")
    parser.add_argument("--out", type=Path, default=Path("models/feedback-rewriter"))
    parser.add_argument("--init", type=Path, help="local seq2seq folder to fine-tune (T5, or a BERT2BERT this "
                        "recipe saved); without it, --family says where to start")
    parser.add_argument("--family", choices=("t5", "bert2bert"), default="t5",
                        help="without --init: a small T5 from scratch, or a BERT2BERT warm-started from MiniLM "
                             "(recipes.warm_start)")
    parser.add_argument("--epochs", type=float, default=4.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, help="default 1e-3 from scratch, 3e-4 when fine-tuning")
    parser.add_argument("--vocab-size", type=int, default=5000)
    parser.add_argument("--num-common-words", type=int, default=20000)
    parser.add_argument("--d-model", type=int, default=192)
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--max-input-len", type=int, default=160)
    parser.add_argument("--max-target-len", type=int, default=96)
    parser.add_argument("--max-train-rows", type=int, help="use only the first N training pairs")
    parser.add_argument("--num-validation-rows", type=int, default=512, help="rows for the validation loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (faster only on CPUs with bf16 units)")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="also save every N steps")
    parser.add_argument("--pick-every", type=int, default=0,
                        help="keep the best of checkpoints every N steps by held-out rewrites (see above)")
    parser.add_argument("--pick-rows", type=int, default=160, help="validation pairs the pick rewrites")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 avoids spinning on a busy machine)")
    parser.add_argument("--copy-steps", type=int, default=0,
                        help="without --init: first train N steps on writing back random English words")
    parser.add_argument("--copy-batch-size", type=int, default=64)
    parser.add_argument("--copy-sentences", type=Path, help="CSV with a `sentence` column (the classifier's "
                        "training sentences) whose phrases the copy practice also writes back")
    parser.add_argument("--copy-sentence-share", type=float, default=0.5,
                        help="share of copy-practice rows taken from --copy-sentences")
    parser.add_argument("--num-beams", type=int, help="decoding written into generation_config.json (the server and "
                        "recipes.evaluate decode as it says; the checkpoint pick too)")
    parser.add_argument("--no-repeat-ngram-size", type=int)
    parser.add_argument("--length-penalty", type=float)
    parser.add_argument("--copy-lr", type=float, default=2e-3)
    return parser.parse_args(argv)


def save(model, tokenizer, out: Path, summary: dict) -> None:
    """fp16 weights in Hugging Face layout; the model in memory stays fp32 for further training."""
    # Tied tensors (the shared embedding, both embed_tokens, lm_head) are one tensor: save it once,
    # or the file carries four copies of the largest matrix. Loading ties them again.
    half, seen = {}, set()
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            half[name] = tensor.half()
    model.save_pretrained(out, state_dict=half, safe_serialization=True)
    # save_pretrained records the in-memory (fp32) dtype; the file holds fp16.
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config["dtype"] = "float16"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    save_tokenizer(tokenizer, out)
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
