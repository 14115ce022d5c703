"""The Triton models: one per consumer group, named after it, with its tensors and its callable.

- a generator group: decoupled (one response per text piece, then an empty one flagged final);
  input `text` BYTES [1], output `text` BYTES [1]; /generate's fields as request parameters. No
  Triton batcher: Triton hands each request over at once, and the Engine batches every running
  generation into each step (continuous batching), as `takeoff serve` does.
- a classifier group: `text` BYTES [1] -> `probabilities` FP32 [num_labels], `label` BYTES [1];
  an embedder group: `text` BYTES [1] -> `embedding` FP32 [dim]. These answer once, and a Triton
  instance holds its batch until it is answered: Triton's dynamic batcher hands the requests that
  arrived meanwhile over together (the dims above follow the batch dimension: send `text` as
  [N, 1]), and the Engine runs them in one step. One instance, because PyTriton's extra
  instances fetch their set-up from the first within a fixed second, which a busy CPU misses
  (measured: models failed to load). The price: PyTriton answers a batch with one error, so a
  request refused for its own text (over-long, empty) fails the requests batched with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

from scheduler.request import Task
from takeoff.engine.readers import ReaderInfo
from takeoff.triton.engine_link import EngineLink
from takeoff.triton.parameters import decode_text, generate_body, refusing, single_pass_texts

TEXT = Tensor(name="text", dtype=bytes, shape=(1,))


@dataclass(frozen=True)
class TritonModel:
    """What `Triton.bind` takes for one consumer group."""
    name: str
    infer_func: list[Callable]  # one callable per Triton instance
    inputs: list[Tensor]
    outputs: list[Tensor]
    config: ModelConfig


def triton_models(link: EngineLink) -> list[TritonModel]:
    builders = {Task.GENERATE: generator_model, Task.CLASSIFY: classifier_model,
                Task.EMBED: embedder_model}
    return [builders[info.task](link, info) for info in link.groups().values()]


def generator_model(link: EngineLink, info: ReaderInfo) -> TritonModel:
    async def infer(requests):
        (request,) = requests  # without a batcher, Triton hands over one request at a time
        with refusing():
            body = generate_body(_text(request), request.parameters)
            pieces = link.generate(body.text, body.sampling(), info.group,
                                   body.prompt_max_tokens)
            try:
                async for piece in pieces:
                    yield [{"text": np.array([piece.encode()], dtype=np.object_)}]
            finally:
                await pieces.aclose()  # ends the request at once if PyTriton stops reading

    return TritonModel(info.group, [infer], [TEXT], [TEXT],
                       ModelConfig(batching=False, decoupled=True))


def classifier_model(link: EngineLink, info: ReaderInfo) -> TritonModel:
    labels = link.labels(info.group)

    async def infer(requests):
        with refusing():
            texts = single_pass_texts(_raw_texts(requests), _parameters(requests))
            rows = await link.classify(texts, info.group)
        probabilities = np.array(rows, dtype=np.float32)  # [num_texts, num_labels]
        names = np.array([[labels[i].encode()] for i in probabilities.argmax(axis=1)],
                         dtype=np.object_)  # [num_texts, 1]
        return _split(requests, probabilities=probabilities, label=names)

    outputs = [Tensor(name="probabilities", dtype=np.float32, shape=(len(labels),)),
               Tensor(name="label", dtype=bytes, shape=(1,))]
    return TritonModel(info.group, [infer], [TEXT], outputs, _batching(info))


def embedder_model(link: EngineLink, info: ReaderInfo) -> TritonModel:
    async def infer(requests):
        with refusing():
            texts = single_pass_texts(_raw_texts(requests), _parameters(requests))
            vectors = await link.embed(texts, info.group)
        return _split(requests, embedding=np.array(vectors, dtype=np.float32))  # [num_texts, dim]

    outputs = [Tensor(name="embedding", dtype=np.float32, shape=(info.dimensions,))]
    return TritonModel(info.group, [infer], [TEXT], outputs, _batching(info))


def _text(request) -> str:
    return decode_text(request.data["text"][0])


def _batching(info: ReaderInfo) -> ModelConfig:
    # No queue delay: a request that finds the model idle runs at once; those that arrive while
    # a batch runs are batched together behind it.
    return ModelConfig(batching=True, max_batch_size=info.max_batch_size,
                       batcher=DynamicBatcher(max_queue_delay_microseconds=0))


def _raw_texts(requests) -> list[bytes]:
    """Every text of a dynamic batch, request after request (each request's `text` is [n, 1])."""
    return [raw for request in requests for raw in request.data["text"][:, 0]]


def _parameters(requests) -> dict:
    merged: dict = {}
    for request in requests:
        merged.update(request.parameters)
    return merged


def _split(requests, **outputs: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Cut the batch's rows back into one response per request."""
    responses, start = [], 0
    for request in requests:
        end = start + len(request.data["text"])
        responses.append({name: rows[start:end] for name, rows in outputs.items()})
        start = end
    return responses
