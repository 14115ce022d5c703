"""Tiny random encoder-decoders of every supported family, saved in Hugging Face layout.

Each is built from its config with random weights, taught to copy a little (tests.tiny_models
.teach_to_copy) so greedy decoding emits varied tokens, and saved with a tokenizer trained here
and the generation_config.json its real counterparts ship (forced BOS, no-repeat n-grams, bad
words, min length), so tests decode each family as its authors configured it.
"""
from __future__ import annotations

import io
import json
import tempfile
import warnings
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (AutoModelForSeq2SeqLM, BartConfig, BertConfig, ElectraConfig, EncoderDecoderConfig,
                          EncoderDecoderModel, GenerationConfig, M2M100Config, MarianConfig, MBartConfig,
                          MT5Config, PegasusConfig, PreTrainedTokenizerFast, RobertaConfig, UMT5Config)

from tests.tiny_models import CORPUS, teach_to_copy

# fairseq's order (BART, mBART, M2M100, NLLB): <s> 0, <pad> 1, </s> 2, <unk> 3; then language codes.
FAIRSEQ_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
LANGUAGES = ["en_XX", "de_DE", "__en__", "__fr__", "eng_Latn", "fra_Latn"]
SMALL = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
             decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
             max_position_embeddings=128, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
SMALL_T5 = dict(d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, num_decoder_layers=2,
                relative_attention_num_buckets=8, relative_attention_max_distance=20, dropout_rate=0.0,
                decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
SMALL_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def build_fairseq_tokenizer(template: str = "$A </s>") -> PreTrainedTokenizerFast:
    """Byte-level BPE with fairseq's special ids and language codes as special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=FAIRSEQ_SPECIALS + LANGUAGES,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, tok.token_to_id(t)) for t in ("<s>", "</s>")])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", additional_special_tokens=LANGUAGES, model_max_length=128)


def build_marian_tokenizer():
    """opus-mt's layout: a MarianTokenizer with SentencePiece models of its own for the source and
    the target side and one vocab.json over both (</s> 0, <unk> 1, <pad> last)."""
    import sentencepiece
    from transformers import MarianTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        pieces = set()
        for side in ("source", "target"):
            proto = io.BytesIO()
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(CORPUS * 4), model_writer=proto, vocab_size=120, model_type="unigram",
                eos_id=0, unk_id=1, pad_id=-1, bos_id=-1, character_coverage=1.0, minloglevel=2, num_threads=1)
            Path(tmp, f"{side}.spm").write_bytes(proto.getvalue())
            model = sentencepiece.SentencePieceProcessor(model_proto=proto.getvalue())
            pieces |= {model.id_to_piece(i) for i in range(model.get_piece_size())}
        vocab = ["</s>", "<unk>"] + sorted(pieces - {"</s>", "<unk>"}) + ["<pad>"]
        Path(tmp, "vocab.json").write_text(json.dumps({piece: i for i, piece in enumerate(vocab)}))
        with warnings.catch_warnings():  # it recommends sacremoses, which only its normaliser needs
            warnings.simplefilter("ignore")
            return MarianTokenizer(source_spm=f"{tmp}/source.spm", target_spm=f"{tmp}/target.spm",
                                   vocab=f"{tmp}/vocab.json", model_max_length=128)


def _marian(tokenizer, **options):
    pad = tokenizer.pad_token_id
    return _bart_like(MarianConfig, tokenizer, bos_token_id=None, eos_token_id=0, pad_token_id=pad,
                      decoder_start_token_id=pad, **options)


def _bart_like(config_class, tokenizer, **options):
    ids = dict(bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2)
    return AutoModelForSeq2SeqLM.from_config(config_class(vocab_size=len(tokenizer), **{**SMALL, **ids, **options}))


def _t5_like(config_class, tokenizer, **options):
    return AutoModelForSeq2SeqLM.from_config(config_class(vocab_size=len(tokenizer), **{**SMALL_T5, **options}))


def _bert2bert(encoder_type: str, tokenizer):
    vocab = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    if encoder_type == "roberta":  # positions counted past padding_idx: two more rows
        encoder = RobertaConfig(**{**SMALL_BERT, **vocab, "max_position_embeddings": 130, "type_vocab_size": 1})
    elif encoder_type == "electra":  # embeddings narrower than the layers: a projection between
        encoder = ElectraConfig(embedding_size=16, **SMALL_BERT, **vocab)
    else:
        encoder = BertConfig(**SMALL_BERT, **vocab)
    decoder = BertConfig(**SMALL_BERT, **vocab, is_decoder=True, add_cross_attention=True)
    config = EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id = tokenizer.cls_token_id, tokenizer.pad_token_id
    config.eos_token_id = tokenizer.sep_token_id
    return EncoderDecoderModel(config=config)


def _wordpiece():
    """BERT's uncased WordPiece over every word and character of the corpus, in sorted order (the
    WordPiece trainer numbers tokens of equal count differently from run to run)."""
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = sorted({word for text in CORPUS
                    for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))})
    chars = sorted({char for word in words for char in word})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + chars + [f"##{c}" for c in chars] + [w for w in words if len(w) > 1]
    tok = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    # bos/eos: what the decoder starts with and teach_to_copy ends its spans with
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", bos_token="[CLS]", eos_token="[SEP]",
                                   model_max_length=128)


# family -> (tokenizer builder, model builder, generation_config.json fields beyond the token ids,
# each a value or a function of the tokenizer)
FAMILIES = {
    # bart-large-cnn's kind of settings: forced BOS, no repeated trigram, a minimum length.
    "bart": (lambda: build_fairseq_tokenizer("<s> $A </s>"), lambda t: _bart_like(BartConfig, t),
             dict(forced_bos_token_id=0, forced_eos_token_id=2, no_repeat_ngram_size=3, min_length=4)),
    # mBART-50 translating into German: the target language code is forced first.
    "mbart": (build_fairseq_tokenizer, lambda t: _bart_like(MBartConfig, t, scale_embedding=True),
              dict(forced_eos_token_id=2)),
    # opus-mt: its tokenizer files; <pad> is the decoder start and a bad word; SiLU, scaled embeddings.
    "marian": (build_marian_tokenizer, lambda t: _marian(t, activation_function="swish", scale_embedding=True),
               dict(bad_words_ids=lambda t: [[t.pad_token_id]], forced_eos_token_id=0, num_beams=4,
                    max_length=512)),
    "marian-untied": (build_fairseq_tokenizer, lambda t: _bart_like(
        MarianConfig, t, decoder_start_token_id=1, share_encoder_decoder_embeddings=False,
        tie_word_embeddings=False, scale_embedding=True), dict(bad_words_ids=[[1]])),
    "pegasus": (build_fairseq_tokenizer, lambda t: _bart_like(
        PegasusConfig, t, decoder_start_token_id=1, scale_embedding=True, activation_function="relu"),
        dict(forced_eos_token_id=2, length_penalty=0.6, num_beams=8)),
    # NLLB-200 (m2m_100 type): the target language forced first; pad-aware sinusoidal positions.
    "m2m_100": (build_fairseq_tokenizer, lambda t: _bart_like(M2M100Config, t, scale_embedding=True), {}),
    "mt5": (build_fairseq_tokenizer, lambda t: _t5_like(MT5Config, t, pad_token_id=1, eos_token_id=2,
                                                         decoder_start_token_id=1), {}),
    "umt5": (build_fairseq_tokenizer, lambda t: _t5_like(UMT5Config, t, pad_token_id=1, eos_token_id=2,
                                                          decoder_start_token_id=1), {}),
    "bert2bert": (_wordpiece, lambda t: _bert2bert("bert", t), {}),
    "roberta2bert": (_wordpiece, lambda t: _bert2bert("roberta", t), {}),
    "electra2bert": (_wordpiece, lambda t: _bert2bert("electra", t), {}),
}
# Where the generation config forces a language code, which one (mBART de_DE, NLLB fra_Latn).
FORCED_LANGUAGE = {"mbart": "de_DE", "m2m_100": "fra_Latn"}


def save_tiny_family(path: Path, family: str, seed: int = 0, steps: int = 300, lr: float = 3e-3) -> Path:
    """A tiny `family` model (a FAMILIES key) at `path`, with tokenizer and generation_config.json.
    Taught long enough that its greedy choices are rarely near-ties (bfloat16 rounds logits to
    1/32 at their size: 80 quicker steps left Hugging Face bf16 batched agreeing with itself
    alone on 92% of Marian's tokens)."""
    build_tokenizer, build_model, generation = FAMILIES[family]
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    model = build_model(tokenizer)
    with warnings.catch_warnings():  # EncoderDecoderModel warns about how its loss was once computed
        warnings.simplefilter("ignore", FutureWarning)
        teach_to_copy(model, tokenizer, steps=steps, lr=lr)
    settings = {key: value(tokenizer) if callable(value) else value for key, value in generation.items()}
    if family in FORCED_LANGUAGE:
        settings["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(FORCED_LANGUAGE[family])
    config = model.config
    start = config.decoder_start_token_id
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start, pad_token_id=config.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, **settings)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
