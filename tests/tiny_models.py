"""Tiny random models with real tokenizers, saved in Hugging Face layout, for tests.

Nothing is downloaded: the tokenizers are trained here on a small corpus, the weights are random.
"""
from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (AutoModelForSequenceClassification, BertConfig, BertModel, ElectraConfig,
                          PreTrainedTokenizerFast, RobertaConfig,
                          T5Config, T5ForConditionalGeneration)

CORPUS = [
    "Your report was late again and the numbers in the forecast were wrong.",
    "Thanks for the clear sprint demo; could you add the test results next time?",
    "The onboarding guide is confusing. Maybe split it into shorter steps.",
    "Context: a manager gives feedback. Make the following feedback constructive:",
    "Café meetings über alles — naïve résumé, 日本語のテキスト, emoji 🙂 and ½ cup.",
    "line one\nline two\n\tindented line three",
    "The quarterly numbers look great, well done to the whole team!",
    "Why is this still broken? You never listen to anyone.",
]

# Shapes exercised by the model tests: (name, T5Config overrides).
T5_SHAPES = {
    "relu-tied": dict(feed_forward_proj="relu", tie_word_embeddings=True),
    "gated-gelu-untied": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    "gated-gelu-tied-wide": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=True,
                                 d_model=48, d_kv=12, num_heads=6, d_ff=96),
    "deep-decoder": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                         num_layers=2, num_decoder_layers=4),
}


def build_t5_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with T5's special tokens: any text, newlines and emoji included."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")


# Extra training text for the SentencePiece tokenizer: digits, quotes and colons, but, as in T5's
# vocabulary, no braces.
SENTENCEPIECE_EXTRA = ["Order 123-456 shipped on 2024-05-17: 3 items, 42 units, 0 returns.",
                       'He said "yes", then "no": label, score, note; 7 8 9.']


def build_t5_sentencepiece_tokenizer() -> PreTrainedTokenizerFast:
    """A unigram tokenizer laid out as T5's: Metaspace pieces ("▁word"), <unk> for characters it
    lacks, and a decoder that drops the first piece's leading space."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>")
    tok.train_from_iterator((CORPUS + SENTENCEPIECE_EXTRA) * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")


def build_wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    """An uncased WordPiece tokenizer with BERT's special tokens."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=300,
                                        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(CORPUS * 4, trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=64)


def save_tiny_t5(path: Path, shape: str = "gated-gelu-untied", seed: int = 0,
                 sentencepiece: bool = False, vocab_padding: int = 0) -> Path:
    """vocab_padding: embedding rows past the tokenizer's ids, as T5's 32,128 rows for 32,100 ids."""
    tokenizer = build_t5_sentencepiece_tokenizer() if sentencepiece else build_t5_tokenizer()
    options = dict(vocab_size=len(tokenizer) + vocab_padding, d_model=32, d_kv=8, num_heads=4, d_ff=64,
                   num_layers=2, num_decoder_layers=2, relative_attention_num_buckets=8,
                   relative_attention_max_distance=20, dropout_rate=0.0,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    options.update(T5_SHAPES[shape])
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(T5Config(**options))
    teach_to_copy(model, tokenizer)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def teach_to_copy(model: T5ForConditionalGeneration, tokenizer, steps: int = 40, lr: float = 1e-2) -> None:
    """A few quick optimizer steps teaching the model to echo spans of the corpus.

    A freshly initialised T5 repeats one token forever, which would hide decoding bugs; a little
    training makes it emit varied tokens and stop with EOS at different lengths."""
    ids = [tokenizer(text)["input_ids"][:-1] for text in CORPUS]
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: threads only contend (7x slower on a busy 2-core box)
    model.train()
    for _ in range(steps):
        spans = []
        for sentence in ids:
            start = int(torch.randint(0, max(1, len(sentence) - 4), (1,), generator=generator))
            length = int(torch.randint(3, 20, (1,), generator=generator))
            spans.append(sentence[start:start + length] + [tokenizer.eos_token_id])
        width = max(map(len, spans))
        inputs = torch.tensor([s + [tokenizer.pad_token_id] * (width - len(s)) for s in spans])
        labels = torch.tensor([s + [-100] * (width - len(s)) for s in spans])
        loss = model(input_ids=inputs, attention_mask=(inputs != tokenizer.pad_token_id).long(),
                     labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    torch.set_num_threads(num_threads)


def save_tiny_classifier(path: Path, labels: tuple[str, ...] | None = None, seed: int = 0,
                         family: str = "electra") -> Path:
    """A tiny random sequence classifier: family "electra" (the default), "bert" or "roberta"."""
    from takeoff.feedback.task import LABELS

    labels = labels or LABELS
    tokenizer = build_wordpiece_tokenizer()
    common = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                  num_labels=len(labels), id2label=dict(enumerate(labels)),
                  label2id={name: i for i, name in enumerate(labels)},
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  pad_token_id=tokenizer.pad_token_id)
    if family == "electra":
        config = ElectraConfig(embedding_size=16, **common)
    elif family == "bert":
        config = BertConfig(**common)
    else:  # RoBERTa's positions start after the padding index: two more positions
        config = RobertaConfig(**{**common, "max_position_embeddings": 66, "type_vocab_size": 1})
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_sentence_encoder(path: Path, pooling: str | list[str] = "mean", normalize: bool = True,
                               seed: int = 0, max_seq_length: int = 24) -> Path:
    """A tiny random BERT saved in the sentence-transformers layout: the encoder at the root,
    modules.json, sentence_bert_config.json, 1_Pooling/config.json and, with normalize,
    2_Normalize/. max_seq_length is below the encoder's 64 positions, so long texts are cut."""
    import json

    tokenizer = build_wordpiece_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = BertModel(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (path / "2_Normalize").mkdir(exist_ok=True)
    (path / "modules.json").write_text(json.dumps(modules, indent=2))
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length,
                                                                "do_lower_case": False}))
    (path / "1_Pooling").mkdir(exist_ok=True)
    (path / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 32, "pooling_mode": pooling}))
    return path
