"""One encoder-decoder kernel for every family: the encoder, cross-attention K/V, one decoder step.

What differs between T5, BART, Marian, Pegasus, M2M100 or BERT2BERT (norm kind and place,
positions, scales, activation, extra norms) is data in `w.spec` (kernels/families.py) and in the
weights kernels/regroup.py reads; the code below is the same for all of them. q/k/v are one
projection, a gated feed-forward's two inputs one, cross K and V one. Linears are called through
kernels.linear.linear() (prepacked, int8 or LoRA-aware layers drop in). Nothing here depends on
Hugging Face's generation or cache classes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from kernels.families import FamilySpec, StackSpec
from kernels.kv_cache import KVCache
from kernels.linear import LinearSource, linear


@dataclass
class Norm:
    """RMS norm (T5: scale only) or LayerNorm (weight and bias)."""
    weight: torch.Tensor  # [d_model]
    bias: torch.Tensor | None
    eps: float
    rms: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.rms:
            return F.layer_norm(x.to(self.weight.dtype), self.weight.shape, self.weight, self.bias, self.eps)
        if x.dtype == self.weight.dtype == torch.float32:  # one fused op
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        # Half precision as Hugging Face: normalise in fp32, round, then scale (x may be fp32: float16
        # T5 keeps `wo` in fp32, so its residual stream is fp32 after the first feed-forward).
        return self.weight * F.rms_norm(x.float(), self.weight.shape, None, self.eps).to(self.weight.dtype)


@dataclass
class Layer:
    """One block's weights. Linear fields hold whatever kernels.linear.linear() takes (a Dense at
    first; the loader prepares them: prepacked for oneDNN, or int8)."""
    self_norm: Norm
    self_qkv: Any  # [3 * inner, d_model]; inner = num_heads * head_dim
    self_out: Any  # [d_model, inner]
    ff_norm: Norm
    ff_in: Any  # [d_ff, d_model], or [2 * d_ff, d_model] (gate then linear) when gated
    ff_out: Any  # [d_model, d_ff]
    cross_norm: Norm | None = None  # decoder only
    cross_q: Any = None  # [inner, d_model]
    cross_kv: Any = None  # [2 * inner, d_model]
    cross_out: Any = None  # [d_model, inner]


@dataclass
class Embedding:
    """How one stack turns token ids into its first hidden states."""
    tokens: torch.Tensor  # [vocab, d_embed]
    scale: float = 1.0
    positions: torch.Tensor | None = None  # [num_positions, d_embed]; None: relative bias instead
    position_offset: int = 0  # row of position 0
    padding_idx: int | None = None  # set where padding tokens take this row (M2M100, RoBERTa)
    token_type: torch.Tensor | None = None  # [d_embed], BERT's type-0 embedding
    norm: Norm | None = None  # layernorm_embedding / BERT's embedding LayerNorm


@dataclass
class Seq2SeqWeights:
    spec: FamilySpec
    encoder_embedding: Embedding
    encoder: list[Layer]
    decoder_embedding: Embedding
    decoder: list[Layer]
    lm_head: Any  # [vocab, d_model] (its bias: final_logits_bias, BERT's output bias)
    encoder_norm: Norm | None = None
    decoder_norm: Norm | None = None
    encoder_bias: torch.Tensor | None = None  # [1 or num_layers, num_buckets, num_heads] relative bias
    decoder_bias: torch.Tensor | None = None
    embedding_project: Any = None  # ELECTRA encoder: [d_model, d_embed]
    encoder_project: Any = None  # EncoderDecoderModel's enc_to_dec_proj: [d_decoder, d_encoder]
    head_dense: Any = None  # BERT: dense, activation, head_norm before the lm_head
    head_norm: Norm | None = None
    activations: dict[str, Callable] = field(default_factory=dict)  # ACT2FN name -> function
    # Hugging Face module name of each layer linear -> where it lives here (LoRA targets these).
    sources: dict[str, LinearSource] = field(default_factory=dict)

    @property
    def num_heads(self) -> int:  # the decoder's: the KV cache's shape
        return self.spec.decoder.num_heads

    @property
    def d_kv(self) -> int:
        return self.spec.decoder.head_dim


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


def decoder_bias_table(w: Seq2SeqWeights, max_len: int) -> torch.Tensor:
    """[num_tables, max_len, num_heads or 1, max_len]: row p of a table is the self-attention bias
    of a query at position p, -inf on the keys after p; one table per layer with its own relative
    bias (UMT5), one for all (T5), or a causal mask alone (absolute positions)."""
    future = torch.ones(max_len, max_len, dtype=torch.bool, device=w.encoder_embedding.tokens.device).triu(1)
    if w.decoder_bias is None:
        mask = torch.zeros(max_len, max_len, device=future.device).masked_fill(future, float("-inf"))
        return mask[None, :, None, :]
    spec = w.spec
    tables = [position_bias(table, max_len, max_len, False, spec.num_buckets, spec.max_distance)
              .masked_fill(future, float("-inf")).permute(1, 0, 2) for table in w.decoder_bias]
    return torch.stack(tables).contiguous()



def embed(emb: Embedding, token_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Token ids [...] at decoder/encoder positions [...] -> hidden states [..., d_embed]."""
    x = F.embedding(token_ids, emb.tokens)
    if emb.scale != 1.0:
        x = x * emb.scale
    if emb.token_type is not None:
        x = x + emb.token_type
    if emb.positions is not None:
        rows = positions + emb.position_offset
        if emb.padding_idx is not None:
            rows = rows.masked_fill(token_ids == emb.padding_idx, emb.padding_idx)
        x = x + F.embedding(rows, emb.positions)
    return emb.norm(x) if emb.norm is not None else x


def _input_positions(emb: Embedding, input_ids: torch.Tensor) -> torch.Tensor:
    """[batch, seq] positions of encoder tokens; where padding tokens take no position (M2M100,
    RoBERTa), the others count up from 0 past them, as Hugging Face counts them."""
    if emb.padding_idx is None:
        return torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    real = (input_ids != emb.padding_idx).long()
    return real.cumsum(dim=1) - 1


def _sublayer(spec: StackSpec, x: torch.Tensor, norm: Norm, run: Callable) -> torch.Tensor:
    """Residual around `run`: normalised before it (pre-norm) or after the sum (post-norm)."""
    if spec.pre_norm:
        return x + _clamp(run(norm(x)))
    return norm(x + run(x))


def _clamp(x: torch.Tensor) -> torch.Tensor:
    # float16 T5 activations overflow; Hugging Face clamps them the same way.
    if x.dtype == torch.float16:
        limit = torch.finfo(torch.float16).max - 1000
        return x.clamp(-limit, limit)
    return x


def feed_forward(w: Seq2SeqWeights, spec: StackSpec, layer: Layer, h: torch.Tensor) -> torch.Tensor:
    activation = w.activations[spec.activation]
    h = linear(h, layer.ff_in)
    if spec.gated:
        gate, up = h.chunk(2, dim=-1)
        h = activation(gate) * up
    else:
        h = activation(h)
    return linear(h, layer.ff_out)


def encode(w: Seq2SeqWeights, input_ids: torch.Tensor, lengths: torch.Tensor,
           between_layers: Callable[[], None] | None = None) -> torch.Tensor:
    """Run the encoder over right-padded inputs. input_ids: [batch, seq], lengths: [batch].
    Returns the states the decoder attends to, [batch, seq, d_model]. `between_layers` runs
    after each layer."""
    spec = w.spec.encoder
    batch, seq = input_ids.shape
    x = embed(w.encoder_embedding, input_ids, _input_positions(w.encoder_embedding, input_ids))
    if w.embedding_project is not None:
        x = linear(x, w.embedding_project)
    padding = torch.arange(seq, device=x.device)[None, :] >= lengths[:, None]  # [batch, seq]
    mask = torch.zeros(padding.shape, dtype=x.dtype, device=x.device).masked_fill(padding, float("-inf"))
    mask = mask[:, None, None, :]  # [batch, 1, 1, seq]
    biases = [mask] if w.encoder_bias is None else [
        position_bias(table, seq, seq, True, w.spec.num_buckets, w.spec.max_distance).to(x.dtype)[None] + mask
        for table in w.encoder_bias]  # each [batch, num_heads or 1, seq, seq]
    inner = spec.num_heads * spec.head_dim

    def attention(layer: Layer, bias: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        qkv = linear(h, layer.self_qkv).view(batch, seq, 3, spec.num_heads, spec.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [batch, num_heads, seq, head_dim]
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=spec.attention_scale)
        return linear(attn.transpose(1, 2).reshape(batch, seq, inner), layer.self_out)

    for i, layer in enumerate(w.encoder):
        bias = biases[i if len(biases) > 1 else 0]
        x = _sublayer(spec, x, layer.self_norm, lambda h: attention(layer, bias, h))
        x = _sublayer(spec, x, layer.ff_norm, lambda h: feed_forward(w, spec, layer, h))
        if between_layers is not None:
            between_layers()
    if w.encoder_norm is not None:
        x = w.encoder_norm(x)
    return linear(x, w.encoder_project) if w.encoder_project is not None else x


def cross_keys_values(w: Seq2SeqWeights, encoded: torch.Tensor, layer: Layer) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoder layer's cross-attention K and V, each [batch, num_heads, seq, head_dim]."""
    spec = w.spec.decoder
    batch, seq, _ = encoded.shape
    kv = linear(encoded, layer.cross_kv).view(batch, seq, 2, spec.num_heads, spec.head_dim)
    k, v = kv.permute(2, 0, 3, 1, 4)
    return k, v


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor,
           scale: float = 1.0) -> torch.Tensor:
    """One query per sequence: q [n, heads, 1, head_dim], keys/values [n, heads, capacity, head_dim]
    (contiguous views of the cache), bias [n, heads or 1, 1, capacity] (-inf where a sequence has
    no key). Plain batched matmuls: for a single query they beat the fused CPU kernel, which tiles
    for long queries (bf16 4-8x). A half-precision q (its model's dtype) rounds the unnormalised
    weights to that dtype before they meet V and normalises after, as torch's fused CPU attention
    (Hugging Face's SDPA) does: a plain fp32 softmax agreed with HF bf16 on 94.2% of a tiny
    Marian's tokens, this on 97.7% (BART 97.8 -> 99.6%)."""
    scaled = q.to(keys.dtype)
    if scale != 1.0:
        scaled = scaled * scale
    scores = torch.matmul(scaled, keys.transpose(-1, -2)).add_(bias)  # [n, heads, 1, capacity]
    if q.dtype == keys.dtype:
        return torch.matmul(scores.softmax(dim=-1), values)
    weights = scores.sub_(scores.amax(dim=-1, keepdim=True)).exp_()
    total = weights.sum(dim=-1, keepdim=True)
    return torch.matmul(weights.to(q.dtype).to(keys.dtype), values).div_(total)


def decode_step(w: Seq2SeqWeights, cache: KVCache, batch, token_ids: torch.Tensor,
                between_layers: Callable[[], None] | None = None) -> torch.Tensor:
    """Run the decoder for one new token per sequence and return fp32 logits [num_seqs, vocab].

    `batch` (a `kv_cache.StepBatch`) holds each sequence's row, position, self-attention bias
    and cross-attention mask; token_ids: [num_seqs], the token each sequence feeds in.
    between_layers() runs after each layer."""
    spec = w.spec.decoder
    n, heads, head_dim = token_ids.shape[0], spec.num_heads, spec.head_dim
    x = embed(w.decoder_embedding, token_ids, batch.positions)  # [n, d_model]

    def scaled_attend(q, keys, values, bias):
        return attend(q, keys, values, bias, spec.attention_scale)

    def self_attention(i: int, layer: Layer, h: torch.Tensor) -> torch.Tensor:
        q, k, v = linear(h, layer.self_qkv).view(n, 3, heads, head_dim).unbind(1)  # each [n, heads, head_dim]
        cache.write_self(i, batch, k, v)
        keys, values = cache.read_self(i, batch)  # [n, heads, self capacity, head_dim]
        bias = batch.self_bias[i if len(batch.self_bias) > 1 else 0]
        attn = attend(q[:, :, None], keys, values, bias, spec.attention_scale)  # [n, heads, 1, head_dim]
        return linear(attn.view(n, heads * head_dim).to(h.dtype), layer.self_out)

    def cross_attention(i: int, layer: Layer, h: torch.Tensor) -> torch.Tensor:
        q = linear(h, layer.cross_q).view(n, heads, 1, head_dim)
        attn = cache.attend_cross(i, batch, q, scaled_attend)  # [n, heads, 1, head_dim]
        return linear(attn.view(n, heads * head_dim).to(h.dtype), layer.cross_out)

    for i, layer in enumerate(w.decoder):
        x = _sublayer(spec, x, layer.self_norm, lambda h: self_attention(i, layer, h))
        x = _sublayer(spec, x, layer.cross_norm, lambda h: cross_attention(i, layer, h))
        x = _sublayer(spec, x, layer.ff_norm, lambda h: feed_forward(w, spec, layer, h))
        if between_layers is not None:
            between_layers()
    return output_logits(w, x)


def output_logits(w: Seq2SeqWeights, x: torch.Tensor) -> torch.Tensor:
    """The decoder's last hidden states [n, d_model] -> fp32 logits [n, vocab]."""
    if w.decoder_norm is not None:
        x = w.decoder_norm(x)
    if w.head_dense is not None:
        x = w.head_norm(w.activations[w.spec.decoder.activation](linear(x, w.head_dense)))
    if w.spec.output_scale != 1.0:
        x = x * w.spec.output_scale
    return linear(x, w.lm_head).float()
