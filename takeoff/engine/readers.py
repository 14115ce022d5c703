"""The loaded models ("readers"), their consumer groups, and turning text into their token ids.

A reader is one model loaded from a local directory, known by its `reader_id` and serving one
consumer group; a group may hold several readers (requests go to the least loaded). Readers come
from the start-up flags, from a Takeoff-style YAML manifest (`--config FILE`), or at run time
from `POST /reader`; `ReaderSpec` (takeoff/engine/manifest.py) is what each of those asks for.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from scheduler.request import Task
from scheduler.sampling_params import SamplingError, SamplingParams, SamplingRequest
from takeoff.config import ServerConfig
from takeoff.engine.manifest import ReaderSpec, startup_specs
from takeoff.errors import bad_request, not_found, too_large

# Takeoff's clients name the classification group "classify" by default.
CLASSIFY_ALIAS = "classify"


@dataclass(frozen=True)
class ReaderInfo:
    """One reader as the API describes it."""
    reader_id: str
    group: str  # its consumer group
    task: Task
    model_path: str
    device: str
    dtype: str
    dtype_reason: str  # why this dtype (the kernels' choice for --dtype auto)
    max_input_len: int  # tokens, special tokens included
    max_batch_size: int  # requests it runs at once: KV slots, or inputs per step
    max_new_tokens: int | None = None  # a generator's cap on new tokens
    max_num_beams: int | None = None  # a generator's cap on num_beams (--max-num-beams)
    dimensions: int | None = None  # an embedder's vector length

    @property
    def beam_limit(self) -> tuple[int, str] | None:
        """A generator's most beams and why: a beam search holds one KV slot per beam, so
        it is the server's cap or the reader's slots, whichever is lower."""
        if self.max_num_beams is None:
            return None
        if self.max_batch_size < self.max_num_beams:
            return (self.max_batch_size, f"on this reader: a beam search holds a KV slot per "
                                         f"beam, and it has {self.max_batch_size}")
        return self.max_num_beams, "on this server (--max-num-beams)"


@dataclass
class Reader:
    """One loaded model in its consumer group."""
    info: ReaderInfo
    model: Any  # kernels.loader.Seq2SeqModel / ClassifierModel, kernels.embedder.EmbeddingModel
    spec: ReaderSpec
    # A generator's kernels.constrained.GrammarCompiler: the engine compiles each request's
    # pattern with it off the event loop, and gives it to the reader's runner.
    grammars: Any = None
    # The model's own sampling defaults (SamplingParams field names): the middle layer of a
    # SamplingRequest, between the API's defaults and what the client set. Empty for now;
    # a model's generation_config.json fills it (issue 26).
    sampling_defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def reader_id(self) -> str:
        return self.info.reader_id

    @property
    def tokenizer(self):
        return self.model.tokenizer

    def encode(self, text: str, prompt_max_tokens: int | None = None) -> list[int]:
        """Token ids, special tokens included: truncated to prompt_max_tokens when it is given,
        otherwise 413 when longer than the reader's limit."""
        limit = self.info.max_input_len
        if prompt_max_tokens is not None:
            limit = min(limit, prompt_max_tokens)
            return self.tokenizer(text, truncation=True, max_length=limit)["input_ids"]
        ids = self.tokenizer(text, verbose=False)["input_ids"]
        _check_length(len(ids), limit)
        return ids

    def encode_pair(self, text: str, pair: str | None) -> tuple[list[int], list[int] | None]:
        """Ids and segment ids of a classifier input (413 when it is over the limit)."""
        encoded = self.tokenizer(text, pair, verbose=False)
        _check_length(len(encoded["input_ids"]), self.info.max_input_len)
        return encoded["input_ids"], encoded.get("token_type_ids")

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def sampling(self, request: SamplingRequest) -> SamplingParams:
        """A request's sampling on this reader (400 naming the client's field when it asks for
        more than this reader allows)."""
        try:
            return request.resolve(self.sampling_defaults, self.info.max_new_tokens,
                                   self.info.beam_limit)
        except SamplingError as exc:
            raise bad_request(str(exc), exc.field) from None


def _check_length(num_tokens: int, limit: int) -> None:
    if num_tokens > limit:
        raise too_large(f"the input is {num_tokens} tokens long; this model takes at most {limit} "
                        f"(pass prompt_max_tokens to truncate it instead)", "text")


def load_reader(config: ServerConfig, spec: ReaderSpec) -> Reader:
    """Load one reader (blocking; raises kernels.loader.ModelLoadError for a bad directory)."""
    from kernels.loader import model_task

    task = spec.task or model_task(spec.model_name)
    return make_reader(config, spec, task, load_model(task, spec.model_name, spec.device,
                                                      config.dtype, config.quantize))


def load_readers(config: ServerConfig) -> list[Reader]:
    return [load_reader(config, spec) for spec in startup_specs(config)]


def load_model(task: Task, path: str, device: str, dtype: str, quantize: str):
    """Load the model for `task`; `quantize` applies to a generator only."""
    if task is Task.GENERATE:
        from kernels.loader import load_generator

        return load_generator(path, device, dtype, quantize)
    if task is Task.CLASSIFY:
        from kernels.loader import load_classifier

        return load_classifier(path, device, dtype)
    from kernels.embedder import load_embedder

    return load_embedder(path, device, dtype)


def batch_size(config: ServerConfig, spec: ReaderSpec, task: Task) -> int:
    """Requests the reader runs at once: its own setting, else the server's for its task."""
    return spec.max_batch_size or (config.max_num_seqs if task.holds_slots
                                   else config.max_classify_batch)


def make_reader(config: ServerConfig, spec: ReaderSpec, task: Task, model) -> Reader:
    generates = task is Task.GENERATE
    info = ReaderInfo(
        reader_id=spec.reader_id or f"{spec.consumer_group}-0", group=spec.consumer_group,
        task=task, model_path=str(model.path), device=str(model.device),
        dtype=str(model.dtype).removeprefix("torch."), dtype_reason=model.dtype_reason,
        max_input_len=min(spec.max_sequence_length or config.max_input_len, model.max_input_len),
        max_batch_size=batch_size(config, spec, task),
        max_new_tokens=config.max_new_tokens if generates else None,
        max_num_beams=config.max_num_beams if generates else None,
        dimensions=getattr(model, "dim", None) if task is Task.EMBED else None)
    grammars = None
    if generates:
        from kernels.constrained import GrammarCompiler

        grammars = GrammarCompiler.for_model(model)
    return Reader(info, model, replace(spec, reader_id=info.reader_id, task=task), grammars)


def resolve_group(groups: dict[str, list[Reader]], name: str | None, task: Task | None) -> str:
    """The group called `name` (404 unknown, 400 when it cannot do `task`); with no name, the
    first group that can (any group when task is None). "classify", when no group has that
    name, names the first classification group, as Takeoff's clients expect."""
    if name == CLASSIFY_ALIAS and name not in groups:
        name = _first_group(groups, Task.CLASSIFY)
    if name is None:
        return _first_group(groups, task)
    readers = groups.get(name)
    if not readers:
        raise not_found(f"consumer group '{name}' does not exist; this server has "
                        f"{', '.join(repr(g) for g in groups) or 'none'}", "consumer_group")
    if task is not None and readers[0].info.task is not task:
        raise bad_request(f"consumer group '{name}' serves {readers[0].info.task.value} requests, "
                          f"not {task.value}", "consumer_group")
    return name


def _first_group(groups: dict[str, list[Reader]], task: Task | None) -> str:
    for group, readers in groups.items():
        if readers and task in (None, readers[0].info.task):
            return group
    what = task.value if task is not None else "serve requests"
    raise not_found(f"no consumer group on this server can {what}", "consumer_group")
