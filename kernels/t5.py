"""T5 as free functions over its weights: the encoder, cross-attention K/V, and one decoder step.

The weights come from a loaded `T5ForConditionalGeneration`, regrouped so that one step is a few
large matmuls: q/k/v fused into one projection, the gated feed-forward's two inputs into one.
Nothing here depends on Hugging Face's generation or cache classes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from kernels.kv_cache import KVCache
from kernels.linear import linear


@dataclass
class T5Layer:
    """One block's weights. The loader replaces the linear ones by prepared layers
    (kernels.linear: prepacked for oneDNN, or int8), which kernels.linear.linear() calls."""
    self_norm: torch.Tensor  # [d_model]
    self_qkv: torch.Tensor  # [3 * inner, d_model]; inner = num_heads * d_kv
    self_out: torch.Tensor  # [d_model, inner]
    ff_norm: torch.Tensor  # [d_model]
    ff_in: torch.Tensor  # [d_ff, d_model], or [2 * d_ff, d_model] (gate then linear) when gated
    ff_out: torch.Tensor  # [d_model, d_ff]
    cross_norm: torch.Tensor | None = None  # decoder only, [d_model]
    cross_q: torch.Tensor | None = None  # [inner, d_model]
    cross_kv: torch.Tensor | None = None  # [2 * inner, d_model]
    cross_out: torch.Tensor | None = None  # [d_model, inner]


@dataclass
class T5Weights:
    embed: torch.Tensor  # [vocab, d_model]
    encoder: list[T5Layer]
    encoder_norm: torch.Tensor  # [d_model]
    encoder_bias: torch.Tensor  # [num_buckets, num_heads]: bidirectional relative position bias
    decoder: list[T5Layer]
    decoder_norm: torch.Tensor
    decoder_bias: torch.Tensor  # [num_buckets, num_heads]: causal relative position bias
    lm_head: torch.Tensor  # [vocab, d_model]
    output_scale: float  # d_model ** -0.5 when the lm_head is tied to the embedding, else 1
    num_heads: int
    d_kv: int
    eps: float
    num_buckets: int
    max_distance: int
    gated: bool
    activation: Callable[[torch.Tensor], torch.Tensor]

    @property
    def inner(self) -> int:
        return self.num_heads * self.d_kv


def t5_weights(model) -> T5Weights:
    """Regroup a T5ForConditionalGeneration's parameters (the model's own tensors where possible)."""
    config = model.config
    gated = bool(getattr(config, "is_gated_act", False))
    scale = getattr(config, "scale_decoder_outputs", config.tie_word_embeddings)
    enc_attn = model.encoder.block[0].layer[0].SelfAttention
    dec_attn = model.decoder.block[0].layer[0].SelfAttention
    return T5Weights(
        embed=model.shared.weight.detach(),
        encoder=[_layer(block, gated) for block in model.encoder.block],
        encoder_norm=model.encoder.final_layer_norm.weight.detach(),
        encoder_bias=enc_attn.relative_attention_bias.weight.detach(),
        decoder=[_layer(block, gated) for block in model.decoder.block],
        decoder_norm=model.decoder.final_layer_norm.weight.detach(),
        decoder_bias=dec_attn.relative_attention_bias.weight.detach(),
        lm_head=model.lm_head.weight.detach(),
        output_scale=config.d_model ** -0.5 if scale else 1.0,
        num_heads=config.num_heads, d_kv=config.d_kv, eps=config.layer_norm_epsilon,
        num_buckets=config.relative_attention_num_buckets,
        max_distance=config.relative_attention_max_distance,
        gated=gated, activation=_activation(config.dense_act_fn, model.dtype))


def _layer(block, gated: bool) -> T5Layer:
    attn = block.layer[0].SelfAttention
    ff = block.layer[-1].DenseReluDense
    ff_in = torch.cat([ff.wi_0.weight, ff.wi_1.weight]) if gated else ff.wi.weight
    layer = T5Layer(self_norm=block.layer[0].layer_norm.weight,
                    self_qkv=torch.cat([attn.q.weight, attn.k.weight, attn.v.weight]),
                    self_out=attn.o.weight, ff_norm=block.layer[-1].layer_norm.weight,
                    ff_in=ff_in, ff_out=ff.wo.weight)
    if len(block.layer) == 3:
        cross = block.layer[1].EncDecAttention
        layer.cross_norm = block.layer[1].layer_norm.weight
        layer.cross_q = cross.q.weight
        layer.cross_kv = torch.cat([cross.k.weight, cross.v.weight])
        layer.cross_out = cross.o.weight
    for name, value in vars(layer).items():
        if value is not None:
            setattr(layer, name, value.detach())
    return layer


def _activation(name: str, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        # In half precision, Hugging Face's tanh GELU rounds after each of its seven steps; the
        # fused op rounds once, which changes greedy tokens (4 points of agreement in bf16).
        return (lambda x: F.gelu(x, approximate="tanh")) if dtype == torch.float32 else _stepwise_tanh_gelu
    if name == "relu":
        return F.relu
    if name == "gelu":
        return F.gelu
    from transformers.activations import ACT2FN

    return ACT2FN[name]


def _stepwise_tanh_gelu(x: torch.Tensor) -> torch.Tensor:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), step by step as Hugging Face's gelu_new
    computes it, in place after the first step."""
    inner = torch.pow(x, 3.0).mul_(0.044715).add_(x).mul_(math.sqrt(2.0 / math.pi))
    return inner.tanh_().add_(1.0).mul_(0.5 * x)


def relative_buckets(relative_position: torch.Tensor, bidirectional: bool, num_buckets: int,
                     max_distance: int) -> torch.Tensor:
    """T5's bucketing of (key position - query position): exact for near, logarithmic for far."""
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    far = max_exact + (torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
                       * (num_buckets - max_exact)).long()
    far = far.clamp(max=num_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, far)


def position_bias(table: torch.Tensor, query_len: int, key_len: int, bidirectional: bool,
                  num_buckets: int, max_distance: int) -> torch.Tensor:
    """[num_heads, query_len, key_len] bias from a [num_buckets, num_heads] table."""
    device = table.device
    relative = (torch.arange(key_len, device=device)[None, :]
                - torch.arange(query_len, device=device)[:, None])  # [query_len, key_len]
    buckets = relative_buckets(relative, bidirectional, num_buckets, max_distance)
    return F.embedding(buckets, table).permute(2, 0, 1)


def decoder_bias_table(w: T5Weights, max_len: int) -> torch.Tensor:
    """[max_len, num_heads, max_len]: row p is the self-attention bias of a query at position p,
    with -inf on the keys after p, so one index_select gives every sequence its own bias and mask."""
    bias = position_bias(w.decoder_bias, max_len, max_len, False, w.num_buckets, w.max_distance)
    future = torch.ones(max_len, max_len, dtype=torch.bool, device=bias.device).triu(1)
    bias = bias.masked_fill(future, float("-inf"))  # [num_heads, max_len, max_len]
    return bias.permute(1, 0, 2).contiguous()


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if x.dtype == weight.dtype == torch.float32:  # one fused op
        return F.rms_norm(x, weight.shape, weight, eps)
    # Half precision as Hugging Face: normalise in fp32, round, then scale (x may be fp32: float16
    # T5 keeps `wo` in fp32, so its residual stream is fp32 after the first feed-forward).
    return weight * F.rms_norm(x.float(), weight.shape, None, eps).to(weight.dtype)


def feed_forward(w: T5Weights, layer: T5Layer, x: torch.Tensor) -> torch.Tensor:
    h = linear(rms_norm(x, layer.ff_norm, w.eps), layer.ff_in)
    if w.gated:
        gate, up = h.chunk(2, dim=-1)
        h = w.activation(gate) * up
    else:
        h = w.activation(h)
    return x + _clamp(linear(h, layer.ff_out))


def _clamp(x: torch.Tensor) -> torch.Tensor:
    # float16 T5 activations overflow; Hugging Face clamps them the same way.
    if x.dtype == torch.float16:
        limit = torch.finfo(torch.float16).max - 1000
        return x.clamp(-limit, limit)
    return x


def encode(w: T5Weights, input_ids: torch.Tensor, lengths: torch.Tensor,
           between_layers: Callable[[], None] | None = None) -> torch.Tensor:
    """Run the encoder over right-padded inputs. input_ids: [batch, seq], lengths: [batch].
    Returns the final hidden states, [batch, seq, d_model]. `between_layers` runs after each
    layer."""
    batch, seq = input_ids.shape
    x = F.embedding(input_ids, w.embed)  # [batch, seq, d_model]
    padding = torch.arange(seq, device=x.device)[None, :] >= lengths[:, None]  # [batch, seq]
    bias = position_bias(w.encoder_bias, seq, seq, True, w.num_buckets, w.max_distance)
    bias = bias.to(x.dtype)[None].masked_fill(padding[:, None, None, :], float("-inf"))
    for layer in w.encoder:  # bias: [batch, num_heads, seq, seq]
        qkv = linear(rms_norm(x, layer.self_norm, w.eps), layer.self_qkv)
        q, k, v = qkv.view(batch, seq, 3, w.num_heads, w.d_kv).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
        x = x + _clamp(linear(attn.transpose(1, 2).reshape(batch, seq, w.inner), layer.self_out))
        x = feed_forward(w, layer, x)
        if between_layers is not None:
            between_layers()
    return rms_norm(x, w.encoder_norm, w.eps)


def cross_keys_values(w: T5Weights, encoded: torch.Tensor, layer: T5Layer) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoder layer's cross-attention K and V, each [batch, num_heads, seq, d_kv]."""
    batch, seq, _ = encoded.shape
    kv = linear(encoded, layer.cross_kv).view(batch, seq, 2, w.num_heads, w.d_kv)
    k, v = kv.permute(2, 0, 3, 1, 4)
    return k, v


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """One query per sequence: q [n, heads, 1, d_kv], keys/values [n, heads, capacity, d_kv]
    (contiguous views of the cache), bias [n, heads or 1, 1, capacity] (-inf where a sequence has
    no key). T5 does not scale q.k. Plain batched matmuls: for a single query they beat the fused
    CPU kernel, which tiles for long queries (bf16 4-8x)."""
    scores = torch.matmul(q.to(keys.dtype), keys.transpose(-1, -2)).add_(bias)  # [n, heads, 1, capacity]
    return torch.matmul(scores.softmax(dim=-1), values).to(q.dtype)


def decode_step(w: T5Weights, cache: KVCache, batch, token_ids: torch.Tensor,
                between_layers: Callable[[], None] | None = None) -> torch.Tensor:
    """Run the decoder for one new token per sequence and return fp32 logits [num_seqs, vocab].

    `batch` (a `kv_cache.StepBatch`) holds each sequence's row, position, self-attention bias
    and cross-attention mask; token_ids: [num_seqs], the token each sequence feeds in.
    between_layers() runs after each layer."""
    n = token_ids.shape[0]
    x = F.embedding(token_ids, w.embed)  # [n, d_model]
    for i, layer in enumerate(w.decoder):
        qkv = linear(rms_norm(x, layer.self_norm, w.eps), layer.self_qkv)
        q, k, v = qkv.view(n, 3, w.num_heads, w.d_kv).unbind(1)  # each [n, num_heads, d_kv]
        cache.write_self(i, batch, k, v)
        keys, values = cache.read_self(i, batch)  # [n, num_heads, self capacity, d_kv]
        attn = attend(q[:, :, None], keys, values, batch.self_bias)  # [n, num_heads, 1, d_kv]
        x = x + _clamp(linear(attn.view(n, w.inner), layer.self_out))

        q = linear(rms_norm(x, layer.cross_norm, w.eps), layer.cross_q).view(n, w.num_heads, 1, w.d_kv)
        attn = cache.attend_cross(i, batch, q, attend)  # [n, num_heads, 1, d_kv]
        x = x + _clamp(linear(attn.view(n, w.inner), layer.cross_out))
        x = feed_forward(w, layer, x)
        if between_layers is not None:
            between_layers()
    x = rms_norm(x, w.decoder_norm, w.eps) * w.output_scale
    return linear(x, w.lm_head).float()
