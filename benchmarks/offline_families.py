"""The offline benchmark's workloads of other encoder-decoder families: random weights of a real
model's shape, saved with a word-level tokenizer ("t17" is id 17), and seeded requests.

marian: Helsinki-NLP/opus-mt-en-de's shape (d_model 512, 6+6 layers, 8 heads, d_ff 2048, SiLU,
    scaled embeddings, 58,101 ids with <pad> last and a zero embedding, tied head); 64 requests.
bart: facebook/bart-base's shape (d_model 768, 6+6 layers, 12 heads, d_ff 3072, GELU, learned
    positions, layernorm_embedding, 50,265 ids, tied head); 64 requests.
Both take inputs of 40-56 tokens and ask for exactly 16-128 new tokens per request, as the
flan-t5-small workload does. Their generation_config.json sets only the special tokens, so that
every system decodes the same way (greedy, EOS suppressed until the request's length).
"""
from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.offline_systems import make_requests
from benchmarks.offline_workloads import Workload, _batch_sizes

OPUS_MT_EN_DE = dict(vocab_size=58101, d_model=512, encoder_layers=6, decoder_layers=6,
                     encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=2048,
                     decoder_ffn_dim=2048, max_position_embeddings=512, activation_function="swish",
                     scale_embedding=True, pad_token_id=58100, eos_token_id=0, decoder_start_token_id=58100)
BART_BASE = dict(vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
                 decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
                 max_position_embeddings=1024, activation_function="gelu", scale_embedding=False,
                 bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2)
NO_DROPOUT = dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)


def save_random_marian(path: Path, seed: int = 0, **overrides) -> Path:
    """A random MarianMTModel of opus-mt-en-de's shape; ids: </s> 0, <unk> 1, t2..., <pad> last."""
    from transformers import MarianConfig, MarianMTModel

    options = {**OPUS_MT_EN_DE, **NO_DROPOUT, **overrides}
    torch.manual_seed(seed)
    model = MarianMTModel(MarianConfig(**options)).eval()
    with torch.no_grad():  # opus-mt's decoder starts from <pad>'s embedding, which is zero
        model.get_input_embeddings().weight[options["pad_token_id"]] = 0
    size = options["vocab_size"]
    names = ["</s>", "<unk>"] + [f"t{i}" for i in range(2, size - 1)] + ["<pad>"]
    return _save(model, path, names, dict(eos_token="</s>", unk_token="<unk>", pad_token="<pad>"))


def save_random_bart(path: Path, seed: int = 0, **overrides) -> Path:
    """A random BartForConditionalGeneration of bart-base's shape; fairseq's special ids."""
    from transformers import BartConfig, BartForConditionalGeneration

    options = {**BART_BASE, **NO_DROPOUT, **overrides}
    torch.manual_seed(seed)
    # normalize_before: BART's post-norm as transformers 4 wrote it, which CTranslate2's converter reads
    model = BartForConditionalGeneration(BartConfig(**options, normalize_before=False)).eval()
    names = ["<s>", "<pad>", "</s>", "<unk>"] + [f"t{i}" for i in range(4, options["vocab_size"])]
    return _save(model, path, names, dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"))


def _save(model, path: Path, names: list[str], special: dict) -> Path:
    from tokenizers import Tokenizer, models
    from transformers import GenerationConfig, PreTrainedTokenizerFast

    config = model.config
    model.generation_config = GenerationConfig(decoder_start_token_id=config.decoder_start_token_id,
                                               eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer = Tokenizer(models.WordLevel({name: i for i, name in enumerate(names)}, unk_token=special["unk_token"]))
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=512, **special).save_pretrained(path)
    return path


def marian(tmp: Path, seed: int, num_requests: int | None, quick: bool) -> Workload:
    num_requests = num_requests or (8 if quick else 64)
    model_dir = save_random_marian(tmp / "marian", seed=seed)
    pad = OPUS_MT_EN_DE["pad_token_id"]  # prompts draw words below it
    requests = make_requests(num_requests, pad, seed=seed, output_lens=(16, 32) if quick else (16, 128),
                             eos_token_id=OPUS_MT_EN_DE["eos_token_id"])
    return Workload("marian", model_dir, requests, _batch_sizes((16, 64), num_requests))


def bart(tmp: Path, seed: int, num_requests: int | None, quick: bool) -> Workload:
    num_requests = num_requests or (8 if quick else 64)
    model_dir = save_random_bart(tmp / "bart", seed=seed)
    requests = make_requests(num_requests, BART_BASE["vocab_size"], seed=seed,
                             output_lens=(16, 32) if quick else (16, 128), eos_token_id=BART_BASE["eos_token_id"])
    return Workload("bart", model_dir, requests, _batch_sizes((16, 64), num_requests))


FAMILY_WORKLOADS = {"marian": marian, "bart": bart}
