"""What each encoder-decoder family does differently, as data read from its Hugging Face config.

One kernel (kernels/seq2seq.py) runs every family; a `FamilySpec` says how: where positions come
from, which norm and where it sits, scales, activation, extra norms, and where the Hugging Face
modules holding each weight are (`Layout`, read by kernels/regroup.py). Adding a family that is
laid out like one of these is a new `FAMILIES` entry, not new kernel code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class LayerLayout:
    """Module names inside one layer (`{ff}`: T5's feed-forward sub-layer index, 1 or 2)."""
    self_qkv: tuple[str, str, str]
    self_out: str
    self_norm: str
    cross_q: str
    cross_kv: tuple[str, str]
    cross_out: str
    cross_norm: str
    ff_in: tuple[str, ...]  # one projection, or the gate then the linear one
    ff_out: str
    ff_norm: str


@dataclass(frozen=True)
class StackSpec:
    """One side (encoder or decoder) of a model."""
    layers: str  # module holding the layers ("model.encoder.layers")
    tokens: str  # token embedding module
    num_heads: int
    head_dim: int
    activation: str  # a transformers ACT2FN name
    gated: bool = False  # the feed-forward's first projection is [gate; up], as T5 v1.1's
    rms_norm: bool = False  # T5's scale-only RMS norm instead of LayerNorm
    pre_norm: bool = True  # norm before each sub-layer (else after its residual add: BART, BERT)
    attention_scale: float = 1.0  # on q.k (T5 folds it into its weights: 1)
    embed_scale: float = 1.0  # sqrt(d_model) where the config says scale_embedding
    positions: str | None = None  # absolute position table module; None: T5's relative bias
    position_offset: int = 0  # table row of position 0 (BART 2; M2M100, RoBERTa padding_idx + 1)
    pad_positions: bool = False  # padding tokens take row padding_idx (positions from token ids)
    relative_bias: str | None = None  # module of the relative bias table ("{i}": each layer's own)
    token_type: str | None = None  # BERT's token-type embedding (type 0 is added to every token)
    embedding_norm: str | None = None  # norm right after the embeddings (layernorm_embedding)
    embedding_project: str | None = None  # ELECTRA's embedding_size -> hidden_size projection
    final_norm: str | None = None  # norm after the last layer


@dataclass(frozen=True)
class FamilySpec:
    model_type: str
    layout: LayerLayout
    encoder: StackSpec
    decoder: StackSpec
    lm_head: str
    logits_bias: str | None = None  # final_logits_bias buffer (BART, mBART, Marian, Pegasus)
    output_scale: float = 1.0  # on the decoder output: T5 with a tied head d_model ** -0.5
    head_transform: str | None = None  # BERT's dense + activation + LayerNorm before the head
    encoder_project: str | None = None  # EncoderDecoderModel's enc_to_dec_proj
    num_buckets: int = 0  # T5 relative positions
    max_distance: int = 0


T5_LAYOUT = LayerLayout(
    ("layer.0.SelfAttention.q", "layer.0.SelfAttention.k", "layer.0.SelfAttention.v"),
    "layer.0.SelfAttention.o", "layer.0.layer_norm", "layer.1.EncDecAttention.q",
    ("layer.1.EncDecAttention.k", "layer.1.EncDecAttention.v"), "layer.1.EncDecAttention.o",
    "layer.1.layer_norm", ("layer.{ff}.DenseReluDense.wi",), "layer.{ff}.DenseReluDense.wo",
    "layer.{ff}.layer_norm")
T5_GATED_FF = ("layer.{ff}.DenseReluDense.wi_0", "layer.{ff}.DenseReluDense.wi_1")
BART_LAYOUT = LayerLayout(
    ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "self_attn.out_proj",
    "self_attn_layer_norm", "encoder_attn.q_proj", ("encoder_attn.k_proj", "encoder_attn.v_proj"),
    "encoder_attn.out_proj", "encoder_attn_layer_norm", ("fc1",), "fc2", "final_layer_norm")
BERT_LAYOUT = LayerLayout(
    ("attention.self.query", "attention.self.key", "attention.self.value"),
    "attention.output.dense", "attention.output.LayerNorm", "crossattention.self.query",
    ("crossattention.self.key", "crossattention.self.value"), "crossattention.output.dense",
    "crossattention.output.LayerNorm", ("intermediate.dense",), "output.dense", "output.LayerNorm")

# How the BART-like families differ: (positions, offset, pad-aware, pre-norm, layernorm_embedding,
# final norms, final_logits_bias).
BART_LIKE = {
    "bart": ("learned", 2, False, False, True, False, True),
    "mbart": ("learned", 2, False, True, True, True, True),
    "marian": ("sinusoidal", 0, False, False, False, False, True),
    "pegasus": ("sinusoidal", 0, False, True, False, True, True),
    "m2m_100": ("sinusoidal", None, True, True, False, True, False),  # None: padding_idx + 1
}
T5_LIKE = ("t5", "mt5", "umt5")
BERT_ENCODERS = ("bert", "roberta", "electra")
SUPPORTED_MODEL_TYPES = T5_LIKE + tuple(BART_LIKE) + ("encoder-decoder",)


class UnsupportedFamily(ValueError):
    """A config this kernel cannot run; the message names the field."""


def family_spec(config) -> FamilySpec:
    """The spec of a transformers config of a supported model_type (else UnsupportedFamily)."""
    model_type = config.model_type
    if model_type in T5_LIKE:
        return _t5(config)
    if model_type in BART_LIKE:
        return _bart_like(config)
    if model_type == "encoder-decoder":
        return _bert2bert(config)
    raise UnsupportedFamily(f"model_type '{model_type}' is not an encoder-decoder this server runs; "
                            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}")


def _t5(config) -> FamilySpec:
    per_layer = config.model_type == "umt5"  # every layer has its own relative bias table
    layout = T5_LAYOUT
    if config.is_gated_act:
        layout = replace(layout, ff_in=T5_GATED_FF)

    def stack(side: str) -> StackSpec:
        bias = f"{side}.block.{{i}}.layer.0.SelfAttention.relative_attention_bias"
        return StackSpec(layers=f"{side}.block", tokens="shared", num_heads=config.num_heads,
                         head_dim=config.d_kv, activation=config.dense_act_fn, gated=config.is_gated_act,
                         rms_norm=True, relative_bias=bias if per_layer else bias.replace("{i}", "0"),
                         final_norm=f"{side}.final_layer_norm")

    # MT5's forward never scales its decoder output (its config says tied, whatever the file
    # says); greedy tokens cannot tell, beam scores can.
    tied = config.model_type != "mt5" and getattr(config, "scale_decoder_outputs", config.tie_word_embeddings)
    return FamilySpec(config.model_type, layout, stack("encoder"), stack("decoder"), lm_head="lm_head",
                      output_scale=config.d_model ** -0.5 if tied else 1.0,
                      num_buckets=config.relative_attention_num_buckets,
                      max_distance=config.relative_attention_max_distance)


def _bart_like(config) -> FamilySpec:
    positions, offset, pad_aware, pre_norm, embedding_norm, final_norm, logits_bias = BART_LIKE[config.model_type]
    if offset is None:
        offset = config.pad_token_id + 1

    def stack(side: str, num_heads: int) -> StackSpec:
        _check_heads(config.d_model, num_heads, f"{side}_attention_heads")
        return StackSpec(
            layers=f"model.{side}.layers", tokens=f"model.{side}.embed_tokens", num_heads=num_heads,
            head_dim=config.d_model // num_heads, activation=config.activation_function,
            pre_norm=pre_norm, attention_scale=(config.d_model // num_heads) ** -0.5,
            embed_scale=math.sqrt(config.d_model) if config.scale_embedding else 1.0,
            positions=f"model.{side}.embed_positions", position_offset=offset, pad_positions=pad_aware,
            embedding_norm=f"model.{side}.layernorm_embedding" if embedding_norm else None,
            final_norm=f"model.{side}.layer_norm" if final_norm else None)

    return FamilySpec(config.model_type, BART_LAYOUT, stack("encoder", config.encoder_attention_heads),
                      stack("decoder", config.decoder_attention_heads), lm_head="lm_head",
                      logits_bias="final_logits_bias" if logits_bias else None)


def _bert2bert(config) -> FamilySpec:
    encoder, decoder = config.encoder, config.decoder
    if encoder.model_type not in BERT_ENCODERS:
        raise UnsupportedFamily(f"config.json encoder.model_type '{encoder.model_type}': an "
                                f"encoder-decoder's encoder must be one of {', '.join(BERT_ENCODERS)}")
    if decoder.model_type != "bert" or not decoder.add_cross_attention:
        raise UnsupportedFamily(f"config.json decoder: an encoder-decoder's decoder must be a 'bert' with "
                                f"add_cross_attention true, not '{decoder.model_type}'")
    project = encoder.hidden_size != decoder.hidden_size and decoder.cross_attention_hidden_size is None
    return FamilySpec("encoder-decoder", BERT_LAYOUT, _bert_stack(encoder, "encoder", "encoder.encoder.layer"),
                      _bert_stack(decoder, "decoder.bert", "decoder.bert.encoder.layer"),
                      lm_head="decoder.cls.predictions.decoder",
                      head_transform="decoder.cls.predictions.transform",
                      encoder_project="enc_to_dec_proj" if project else None)


def _bert_stack(config, prefix: str, layers: str) -> StackSpec:
    _check_heads(config.hidden_size, config.num_attention_heads, f"{prefix}.num_attention_heads")
    roberta = config.model_type == "roberta"  # positions counted from padding_idx + 1
    electra = config.model_type == "electra" and config.embedding_size != config.hidden_size
    head_dim = config.hidden_size // config.num_attention_heads
    embeddings = f"{prefix}.embeddings"
    return StackSpec(layers=layers, tokens=f"{embeddings}.word_embeddings", num_heads=config.num_attention_heads,
                     head_dim=head_dim, activation=config.hidden_act, pre_norm=False,
                     attention_scale=head_dim ** -0.5, positions=f"{embeddings}.position_embeddings",
                     position_offset=config.pad_token_id + 1 if roberta else 0, pad_positions=roberta,
                     token_type=f"{embeddings}.token_type_embeddings", embedding_norm=f"{embeddings}.LayerNorm",
                     embedding_project=f"{prefix}.embeddings_project" if electra else None)


def _check_heads(width: int, num_heads: int, field: str) -> None:
    if num_heads <= 0 or width % num_heads:
        raise UnsupportedFamily(f"config.json {field} = {num_heads} does not divide the model width {width}")


def decoder_cache_shape(config: dict) -> tuple[int, int, int]:
    """(layers, heads, head_dim) of the decoder's KV cache, from config.json's raw dict (no
    transformers import: kernels/memory.py sizes a reader before loading it)."""
    model_type = config.get("model_type")
    if model_type in T5_LIKE:
        layers = config.get("num_decoder_layers") or config.get("num_layers") or 0
        return layers, config.get("num_heads", 0), config.get("d_kv", 0)
    if model_type in BART_LIKE:
        heads = config.get("decoder_attention_heads", 0)
        return config.get("decoder_layers", 0), heads, config.get("d_model", 0) // max(1, heads)
    if model_type == "encoder-decoder":
        decoder = config.get("decoder", {})
        heads = decoder.get("num_attention_heads", 0)
        return decoder.get("num_hidden_layers", 0), heads, decoder.get("hidden_size", 0) // max(1, heads)
    return 0, 0, 0
