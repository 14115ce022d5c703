"""Regroup a loaded Hugging Face encoder-decoder into kernels/seq2seq.py's weights, by its spec.

The module names come from the family's spec (kernels/families.py); the tensors are the model's
own (detached), fused where one matmul can do the work of several (q/k/v, gate/up, cross k/v).
Each Hugging Face nn.Linear of a layer is recorded in `sources`, so that an adapter naming it can
find its rows in the fused weight.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kernels.families import FamilySpec, LayerLayout, StackSpec
from kernels.linear import Dense, LinearSource
from kernels.seq2seq import Embedding, Layer, Norm, Seq2SeqWeights


def seq2seq_weights(model, spec: FamilySpec) -> Seq2SeqWeights:
    """The weights of `model` (a transformers encoder-decoder of `spec`'s family)."""
    sources: dict[str, LinearSource] = {}
    encoder = _layers(model, spec.layout, spec.encoder, "encoder", sources)
    decoder = _layers(model, spec.layout, spec.decoder, "decoder", sources)
    head = _module(model, spec.lm_head)
    bias = head.bias
    if spec.logits_bias is not None:  # final_logits_bias: [1, vocab]
        bias = model.get_buffer(spec.logits_bias)[0]
    transform = _module(model, spec.head_transform) if spec.head_transform else None
    return Seq2SeqWeights(
        spec=spec, encoder_embedding=_embedding(model, spec.encoder), encoder=encoder,
        decoder_embedding=_embedding(model, spec.decoder), decoder=decoder,
        lm_head=_dense(head.weight, bias), encoder_norm=_norm(model, spec.encoder.final_norm),
        decoder_norm=_norm(model, spec.decoder.final_norm),
        encoder_bias=_relative_bias(model, spec.encoder, len(encoder)),
        decoder_bias=_relative_bias(model, spec.decoder, len(decoder)),
        embedding_project=_linear(model, spec.encoder.embedding_project),
        encoder_project=_linear(model, spec.encoder_project),
        head_dense=_dense(transform.dense.weight, transform.dense.bias) if transform else None,
        head_norm=_norm(model, f"{spec.head_transform}.LayerNorm") if transform else None,
        activations={s.activation: _activation(s.activation, head.weight.dtype)
                     for s in (spec.encoder, spec.decoder)},
        sources=sources)


def _layers(model, layout: LayerLayout, stack: StackSpec, side: str,
            sources: dict[str, LinearSource]) -> list[Layer]:
    blocks = _module(model, stack.layers)
    ff = 2 if side == "decoder" else 1  # T5's feed-forward sub-layer index
    layers = []
    for i, block in enumerate(blocks):
        prefix = f"{stack.layers}.{i}"

        def fused(field: str, names) -> Dense:
            modules = [block.get_submodule(name.format(ff=ff)) for name in names]
            start = 0
            for name, module in zip(names, modules):
                rows = module.weight.shape[0]
                sources[f"{prefix}.{name.format(ff=ff)}"] = LinearSource(side, i, field, (start, start + rows))
                start += rows
            weight = torch.cat([m.weight for m in modules]) if len(modules) > 1 else modules[0].weight
            biases = [m.bias for m in modules]
            if all(b is None for b in biases):
                return _dense(weight, None)
            biases = [torch.zeros(m.weight.shape[0], dtype=m.weight.dtype) if b is None else b
                      for m, b in zip(modules, biases)]
            return _dense(weight, torch.cat(biases) if len(biases) > 1 else biases[0])

        def norm(name: str) -> Norm:
            return _norm_of(block.get_submodule(name.format(ff=ff)))

        layer = Layer(self_norm=norm(layout.self_norm), self_qkv=fused("self_qkv", layout.self_qkv),
                      self_out=fused("self_out", (layout.self_out,)), ff_norm=norm(layout.ff_norm),
                      ff_in=fused("ff_in", layout.ff_in), ff_out=fused("ff_out", (layout.ff_out,)))
        if side == "decoder":
            layer.cross_norm = norm(layout.cross_norm)
            layer.cross_q = fused("cross_q", (layout.cross_q,))
            layer.cross_kv = fused("cross_kv", layout.cross_kv)
            layer.cross_out = fused("cross_out", (layout.cross_out,))
        layers.append(layer)
    return layers


def _embedding(model, stack: StackSpec) -> Embedding:
    tokens = _module(model, stack.tokens).weight.detach()
    emb = Embedding(tokens=tokens, scale=stack.embed_scale, norm=_norm(model, stack.embedding_norm))
    if stack.positions is not None:
        table = _module(model, stack.positions)
        # Sinusoidal tables: a weight (Marian, Pegasus) or a buffer built at load (M2M100).
        weights = table.weight if hasattr(table, "weight") else table.weights
        emb.positions = weights.detach().to(tokens.dtype)
        emb.position_offset = stack.position_offset
        if stack.pad_positions:
            emb.padding_idx = stack.position_offset - 1
    if stack.token_type is not None:
        emb.token_type = _module(model, stack.token_type).weight[0].detach()
    return emb


def _relative_bias(model, stack: StackSpec, num_layers: int) -> torch.Tensor | None:
    """[1 or num_layers, num_buckets, num_heads], or None for absolute positions."""
    if stack.relative_bias is None:
        return None
    names = list(dict.fromkeys(stack.relative_bias.format(i=i) for i in range(num_layers)))
    return torch.stack([_module(model, name).weight.detach() for name in names])


def _module(model, name: str):
    return model.get_submodule(name)


def _norm(model, name: str | None) -> Norm | None:
    return _norm_of(_module(model, name)) if name else None


def _norm_of(module) -> Norm:
    """T5's scale-only RMS norm has `variance_epsilon`; nn.LayerNorm has `eps` and a bias."""
    if hasattr(module, "variance_epsilon"):
        return Norm(module.weight.detach(), None, module.variance_epsilon, rms=True)
    bias = None if module.bias is None else module.bias.detach()
    return Norm(module.weight.detach(), bias, module.eps, rms=False)


def _linear(model, name: str | None) -> Dense | None:
    if not name:
        return None
    module = _module(model, name)
    return _dense(module.weight, module.bias)


def _dense(weight: torch.Tensor, bias: torch.Tensor | None) -> Dense:
    return Dense(weight.detach(), None if bias is None else bias.detach().to(weight.dtype))


def _activation(name: str, dtype: torch.dtype):
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        # In half precision, Hugging Face's tanh GELU rounds after each of its seven steps; the
        # fused op rounds once, which changes greedy tokens (4 points of agreement in bf16).
        if dtype == torch.float32:
            return lambda x: F.gelu(x, approximate="tanh")

        def stepwise_tanh_gelu(x: torch.Tensor) -> torch.Tensor:
            inner = torch.pow(x, 3.0).mul_(0.044715).add_(x).mul_(math.sqrt(2.0 / math.pi))
            return inner.tanh_().add_(1.0).mul_(0.5 * x)

        return stepwise_tanh_gelu
    simple = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu, "swish": F.silu}
    if name in simple:
        return simple[name]
    from transformers.activations import ACT2FN

    return ACT2FN[name]
