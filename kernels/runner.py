"""Executes one `SchedulerOutput`: classification, prefills and decodes, mixed in one step.

The runner is the only place that turns the scheduler's integers (slots, token ids) into tensors.
It keeps each slot's sequence state (tokens so far, sampling parameters, generator), set at
prefill and dropped when the scheduler frees the slot, and maps slots to KV-cache rows kept
packed at the front, so a decode step reads the cache as views instead of gathering it.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import torch

from kernels import seq2seq
from kernels.classifier import classify
from kernels.constrained import GrammarCompiler, GrammarError
from kernels.kv_cache import KVCache
from kernels.loader import ClassifierModel, Seq2SeqModel
from kernels.sampling import SlotState, choose_tokens, make_generator
from scheduler.output import PrefillInput, RunnerOutput, SchedulerOutput

logger = logging.getLogger(__name__)

# Prefill inputs are padded to a multiple of this: batches of similar lengths then share a few
# shapes, whose oneDNN primitives (JIT-compiled per shape on AMX) stay cached.
PREFILL_LENGTH_STEP = 16


class ModelRunner:
    def __init__(self, generator: Seq2SeqModel | None = None, classifier: ClassifierModel | None = None,
                 max_num_seqs: int = 64, max_len: int = 256, max_input_len: int = 512,
                 embedder=None):
        self.generator, self.classifier, self.embedder = generator, classifier, embedder
        self.max_num_seqs, self.max_len, self.max_input_len = max_num_seqs, max_len, max_input_len
        self.slots: dict[int, SlotState] = {}
        self.row_slots: list[int] = []  # the slot whose sequence is in each occupied cache row
        self.cache: KVCache | None = None
        self._grammars: GrammarCompiler | None = None
        if generator is not None:
            if generator.max_target_len is not None and max_len > generator.max_target_len:
                logger.info("max_len %d cut to the %d decoder positions of %s", max_len,
                            generator.max_target_len, generator.path)
                self.max_len = max_len = generator.max_target_len
            w = generator.weights
            with torch.inference_mode():
                bias_table = seq2seq.decoder_bias_table(w, max_len)
                # fp32 whatever the model's dtype: attention scores rounded to bf16 cost 6 points of
                # agreement with Hugging Face (whose SDPA computes in fp32), and on CPU the
                # single-query matmuls run about as fast in fp32 (12% more step time in bf16).
                self.cache = KVCache(len(w.decoder), max_num_seqs, w.num_heads, w.d_kv, max_len,
                                     max_input_len, bias_table, generator.device, torch.float32)
            logger.info("KV cache: %d slots x %d tokens (self) / %d (cross), %.1f MiB",
                        max_num_seqs, max_len, max_input_len, self.kv_cache_bytes / 2**20)

    @property
    def kv_cache_bytes(self) -> int:
        return self.cache.nbytes if self.cache is not None else 0

    def execute(self, scheduler_output: SchedulerOutput,
                between_layers: Callable[[], None] | None = None) -> RunnerOutput:
        """Run one step. `between_layers`, when given, is called after every encoder and decoder
        layer (the engine lets waiting classifications cut in there). A prefill whose input this
        runner cannot take fails alone, in `errors`; the rest of the step runs."""
        output = RunnerOutput()
        with torch.inference_mode():
            for slot in scheduler_output.freed_slots:
                self._free(slot)
            if scheduler_output.classify:
                start = time.perf_counter()
                self._one_pass(scheduler_output, output)
                output.step_seconds["classify"] = time.perf_counter() - start
            matchers: dict = {}  # request id -> its grammar matcher (constrained requests)
            prefills = self._accepted(scheduler_output.prefill, output.errors, matchers)
            if prefills:
                start = time.perf_counter()
                self._prefill(prefills, matchers, between_layers)
                output.step_seconds["prefill"] = time.perf_counter() - start
            # New sequences take their first decoder step together with the running ones.
            slots = list(scheduler_output.decode_slots) + [p.slot for p in prefills]
            if slots:
                start = time.perf_counter()
                output.next_token_ids = self._decode(slots, between_layers)
                kind = "decode" if scheduler_output.decode_slots else "prefill"
                output.step_seconds[kind] = output.step_seconds.get(kind, 0.0) + time.perf_counter() - start
        return output

    def _one_pass(self, scheduler_output: SchedulerOutput, output: RunnerOutput) -> None:
        """Classifications (a classifier) or embeddings (an embedder), in one forward pass."""
        items = scheduler_output.classify
        if self.embedder is not None:
            from kernels.embedder import embed

            rows = embed(self.embedder, [c.token_ids for c in items]).tolist()
            output.embeddings = {c.request_id: row for c, row in zip(items, rows)}
            return
        inputs = [(c.token_ids, c.token_type_ids) for c in items]
        rows = classify(self._need(self.classifier, "classifier"), inputs)
        output.probabilities = {c.request_id: row for c, row in zip(items, rows)}

    def _accepted(self, prefills: list[PrefillInput], errors: dict[str, str],
                  matchers: dict) -> list[PrefillInput]:
        """The prefills this runner can take (their grammar matchers into `matchers`); each other
        one gets its reason in `errors`."""
        accepted = []
        for p in prefills:
            if not 0 <= p.slot < self.max_num_seqs:
                raise ValueError(f"slot {p.slot} is outside 0..{self.max_num_seqs - 1}")
            reason = self._refusal(p)
            if reason is None:
                try:
                    matchers[p.request_id] = self._matcher(p)
                except GrammarError as exc:
                    reason = str(exc)
            if reason is None:
                accepted.append(p)
            else:
                errors[p.request_id] = reason
        return accepted

    def _refusal(self, p: PrefillInput) -> str | None:
        """Why this runner cannot take the prefill, or None."""
        if not 0 < len(p.prompt_ids) <= self.max_input_len:
            return f"{len(p.prompt_ids)} input tokens; 1 to {self.max_input_len} allowed"
        if p.sampling.max_new_tokens > self.max_len:
            return f"max_new_tokens {p.sampling.max_new_tokens} exceeds the runner's max_len {self.max_len}"
        return self._bad_prefix(p)

    def _prefill(self, prefills: list[PrefillInput], matchers: dict,
                 between_layers: Callable[[], None] | None = None) -> None:
        """Encode any set of new sequences (all of a step's, or a few) and store their
        cross-attention K/V; the running sequences keep their rows. Inputs are encoded in groups
        of one padded width: padding all to the longest cost 30% more encoder work on prompts
        of 72-123 tokens."""
        groups: dict[int, list[PrefillInput]] = {}
        for p in prefills:
            groups.setdefault(self._padded_width(len(p.prompt_ids)), []).append(p)
        for width, group in sorted(groups.items()):
            self._prefill_group(group, width, matchers, between_layers)

    def _padded_width(self, length: int) -> int:
        return min(-(-length // PREFILL_LENGTH_STEP) * PREFILL_LENGTH_STEP, self.max_input_len)

    def _prefill_group(self, prefills: list[PrefillInput], width: int, matchers: dict,
                       between_layers) -> None:
        model = self._need(self.generator, "generator")
        lengths = [len(p.prompt_ids) for p in prefills]
        input_ids = torch.full((len(prefills), width), model.pad_token_id, dtype=torch.long)
        for i, p in enumerate(prefills):  # [batch, width], right-padded
            input_ids[i, :lengths[i]] = torch.tensor(p.prompt_ids)
        device = model.device
        encoded = seq2seq.encode(model.weights, input_ids.to(device), torch.tensor(lengths, device=device),
                            between_layers)
        for p, length in zip(prefills, lengths):
            matcher = matchers.get(p.request_id)
            self._free(p.slot)  # a slot reused without being reported free
            generator = None if p.sampling.is_greedy else make_generator(p.sampling.seed, device)
            self.slots[p.slot] = SlotState(p.request_id, p.sampling, length, [model.decoder_start_token_id],
                                           generator, row=len(self.row_slots), matcher=matcher)
            self.cache.claim(len(self.row_slots))
            self.row_slots.append(p.slot)
        self._fit_cache(between_layers)
        rows = torch.tensor([self.slots[p.slot].row for p in prefills], device=device)
        for i, layer in enumerate(model.weights.decoder):
            keys, values = seq2seq.cross_keys_values(model.weights, encoded, layer)
            self.cache.write_cross(i, rows, keys, values)
            if between_layers is not None:
                between_layers()

    def _fit_cache(self, between_layers: Callable[[], None] | None = None) -> None:
        """Cache capacities for the longest decoder and encoder lengths among occupied rows."""
        states = self.slots.values()
        self.cache.fit(max(s.position for s in states) + 1, max(s.input_len for s in states),
                       len(self.row_slots), between_layers)

    def _free(self, slot: int) -> None:
        """Drop the slot's sequence; the sequence in the last row moves into its row."""
        state = self.slots.pop(slot, None)
        if state is None:
            return
        last_slot = self.row_slots.pop()
        if last_slot != slot:
            moved = self.slots[last_slot]
            self.cache.move(moved.row, state.row)
            moved.row = state.row
            self.row_slots[state.row] = last_slot

    def _decode(self, slots: list[int],
                between_layers: Callable[[], None] | None = None) -> dict[str, int]:
        model = self._need(self.generator, "generator")
        states = []
        for slot in slots:
            state = self.slots.get(slot)
            if state is None:
                raise ValueError(f"slot {slot} holds no sequence; it must be prefilled first")
            if state.position >= self.max_len:
                raise ValueError(f"request {state.request_id} reached the runner's max_len {self.max_len}")
            states.append(state)
        states.sort(key=lambda state: state.row)  # consecutive rows: read by slicing
        self._fit_cache(between_layers)
        batch = self.cache.step_batch([s.row for s in states], [s.position for s in states],
                                      [s.input_len for s in states])
        last_tokens = torch.tensor([s.token_ids[-1] for s in states], device=model.device)
        logits = seq2seq.decode_step(model.weights, self.cache, batch, last_tokens,
                                between_layers)  # [n, vocab]
        tokens = choose_tokens(logits, states, model.eos_token_id)
        for state, token in zip(states, tokens):
            state.append(token)
        return {state.request_id: token for state, token in zip(states, tokens)}

    @property
    def grammars(self) -> GrammarCompiler:
        """Compiles the generator's regex / JSON-schema constraints (made on first use). The HTTP
        layer compiles each request's pattern here first, so a bad one is a 400, not a failed step."""
        if self._grammars is None:
            self._grammars = GrammarCompiler.for_model(self._need(self.generator, "generator"))
        return self._grammars

    def _matcher(self, p: PrefillInput):
        if p.sampling.regex is None and p.sampling.json_schema is None:
            return None
        return self.grammars.matcher(p.sampling.regex, p.sampling.json_schema)

    def _bad_prefix(self, p: PrefillInput) -> str | None:
        """Why this request's decoder prefix cannot be decoded, or None."""
        prefix = p.sampling.decoder_prefix
        if not prefix:
            return None
        if len(prefix) > p.sampling.max_new_tokens:
            return f"the decoder prefix ({len(prefix)} tokens) is longer than max_new_tokens"
        if p.sampling.regex is not None or p.sampling.json_schema is not None:
            return "a decoder prefix cannot be combined with a regex or JSON schema constraint"
        vocab_size = self._need(self.generator, "generator").vocab_size
        if not all(0 <= token < vocab_size for token in prefix):
            return f"the decoder prefix has token ids outside the vocabulary (0 to {vocab_size - 1})"
        return None

    @staticmethod
    def _need(model, role: str):
        if model is None:
            raise ValueError(f"this step asks for the {role}, but the runner was built without one")
        return model
