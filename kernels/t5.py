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


@dataclass
class T5Layer:
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
        gated=gated, activation=_activation(config.dense_act_fn))


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


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu
    if name == "gelu":
        return F.gelu
    from transformers.activations import ACT2FN

    return ACT2FN[name]


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
    if x.dtype == weight.dtype == torch.float32:  # one fused op instead of seven
        return F.rms_norm(x, weight.shape, weight, eps)
    variance = x.float().pow(2).mean(-1, keepdim=True)  # half precision: accumulate in fp32
    return weight * (x * torch.rsqrt(variance + eps)).to(weight.dtype)


def feed_forward(w: T5Weights, layer: T5Layer, x: torch.Tensor) -> torch.Tensor:
    h = F.linear(rms_norm(x, layer.ff_norm, w.eps), layer.ff_in)
    if w.gated:
        gate, linear = h.chunk(2, dim=-1)
        h = w.activation(gate) * linear
    else:
        h = w.activation(h)
    # Hugging Face keeps `wo` in fp32 for half-precision T5 (it overflows otherwise); the residual
    # stream then continues in fp32, as it does there.
    return x + _clamp(F.linear(h.to(layer.ff_out.dtype), layer.ff_out))


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
        qkv = F.linear(rms_norm(x, layer.self_norm, w.eps), layer.self_qkv)
        q, k, v = qkv.view(batch, seq, 3, w.num_heads, w.d_kv).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
        x = x + _clamp(F.linear(attn.transpose(1, 2).reshape(batch, seq, w.inner), layer.self_out))
        x = feed_forward(w, layer, x)
        if between_layers is not None:
            between_layers()
    return rms_norm(x, w.encoder_norm, w.eps)


def cross_keys_values(w: T5Weights, encoded: torch.Tensor, layer: T5Layer) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoder layer's cross-attention K and V, each [batch, num_heads, seq, d_kv]."""
    batch, seq, _ = encoded.shape
    kv = F.linear(encoded, layer.cross_kv).view(batch, seq, 2, w.num_heads, w.d_kv)
    k, v = kv.permute(2, 0, 3, 1, 4)
    return k, v


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """One query per sequence: q [n, heads, 1, d_kv], keys/values [n, heads, length, d_kv] (views
    into the cache), bias [n, heads or 1, 1, length]. T5 does not scale q.k. Plain batched matmuls:
    for a single query they beat the fused CPU kernel, which tiles for long queries."""
    scores = torch.matmul(q, keys.transpose(-1, -2)) + bias  # [n, heads, 1, length]
    return torch.matmul(scores.softmax(dim=-1), values)


def decode_step(w: T5Weights, cache: KVCache, batch, token_ids: torch.Tensor,
                between_layers: Callable[[], None] | None = None) -> torch.Tensor:
    """Run the decoder for one new token per sequence and return fp32 logits [num_seqs, vocab].

    `batch` (a `kv_cache.StepBatch`) holds each sequence's slot, position, self-attention bias
    and cross-attention mask; token_ids: [num_seqs], the token each sequence feeds in."""
    n = token_ids.shape[0]
    x = F.embedding(token_ids, w.embed)  # [n, d_model]
    for i, layer in enumerate(w.decoder):
        qkv = F.linear(rms_norm(x, layer.self_norm, w.eps), layer.self_qkv)
        q, k, v = qkv.view(n, 3, w.num_heads, w.d_kv).unbind(1)  # each [n, num_heads, d_kv]
        cache.write_self(i, batch, k, v)
        keys, values = cache.read_self(i, batch)  # [n, num_heads, max_active_len, d_kv]
        attn = attend(q[:, :, None], keys, values, batch.self_bias)  # [n, num_heads, 1, d_kv]
        x = x + _clamp(F.linear(attn.reshape(n, w.inner), layer.self_out))

        q = F.linear(rms_norm(x, layer.cross_norm, w.eps), layer.cross_q).view(n, w.num_heads, 1, w.d_kv)
        keys, values = cache.read_cross(i, batch)  # [n, num_heads, max_active_input_len, d_kv]
        attn = attend(q, keys, values, batch.cross_mask)
        x = x + _clamp(F.linear(attn.reshape(n, w.inner), layer.cross_out))
        x = feed_forward(w, layer, x)
        if between_layers is not None:
            between_layers()
    x = rms_norm(x, w.decoder_norm, w.eps) * w.output_scale
    return F.linear(x, w.lm_head).float()
