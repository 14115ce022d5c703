"""Executes one `SchedulerOutput`: classification, prefills and decodes, mixed in one step.

The runner is the only place that turns the scheduler's integers (slots, token ids) into tensors.
It keeps each slot's sequence state (tokens so far, sampling parameters, generator), set at
prefill and dropped when the scheduler frees the slot, and maps slots to KV-cache rows kept
packed at the front, so a decode step reads the cache as views instead of gathering it. Each
request has one cross-attention row, also packed; a beam search's beams (kernels/beam.py) share
it, and move between its own self-attention rows as the scheduler's beam steps say.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import torch

from kernels import t5
from kernels.beam import BeamRows, beam_candidates, follow
from kernels.classifier import classify
from kernels.constrained import GrammarCompiler, GrammarError
from kernels.kv_cache import KVCache
from kernels.loader import ClassifierModel, Seq2SeqModel
from kernels.sampling import SlotState, choose_tokens, make_generator
from scheduler.beams import initial_scores
from scheduler.output import BeamCandidates, BeamStep, PrefillInput, RunnerOutput, SchedulerOutput

logger = logging.getLogger(__name__)

# Prefill inputs are padded to a multiple of this: batches of similar lengths then share a few
# shapes, whose oneDNN primitives (JIT-compiled per shape on AMX) stay cached.
PREFILL_LENGTH_STEP = 16


class ModelRunner:
    def __init__(self, generator: Seq2SeqModel | None = None, classifier: ClassifierModel | None = None,
                 max_num_seqs: int = 64, max_len: int = 256, max_input_len: int = 512,
                 embedder=None, grammars: GrammarCompiler | None = None):
        self.generator, self.classifier, self.embedder = generator, classifier, embedder
        self.max_num_seqs, self.max_len, self.max_input_len = max_num_seqs, max_len, max_input_len
        self.slots: dict[int, SlotState] = {}
        self.row_slots: list[int] = []  # the slot whose sequence is in each occupied self row
        self.cross_slots: list[list[int]] = []  # the slots whose sequences read each cross row
        self.beams: dict[str, BeamRows] = {}  # running beam searches, by request id
        self.cache: KVCache | None = None
        # The compiler the server checked each request's pattern with, off its event loop, so a
        # prefill finds it in the cache; None: made on first use.
        self._grammars = grammars
        if generator is not None:
            w = generator.weights
            with torch.inference_mode():
                bias_table = t5.decoder_bias_table(w, max_len)
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
            self._follow_beams(scheduler_output.beam_steps)
            if scheduler_output.one_pass:
                start = time.perf_counter()
                self._one_pass(scheduler_output, output)
                kind = "embed" if self.embedder is not None else "classify"
                output.step_seconds[kind] = time.perf_counter() - start
            matchers: dict = {}  # request id -> its grammar matcher (constrained requests)
            prefills = self._accepted(scheduler_output.prefill, output.errors, matchers)
            if prefills:
                start = time.perf_counter()
                self._prefill(prefills, matchers, between_layers)
                output.step_seconds["prefill"] = time.perf_counter() - start
            # New sequences take their first decoder step together with the running ones.
            slots = list(scheduler_output.decode_slots) + [s for p in prefills for s in p.slots]
            if slots:
                start = time.perf_counter()
                output.next_token_ids, output.beam_candidates = self._decode(slots, between_layers)
                kind = "decode" if scheduler_output.decode_slots else "prefill"
                output.step_seconds[kind] = output.step_seconds.get(kind, 0.0) + time.perf_counter() - start
        return output

    def _one_pass(self, scheduler_output: SchedulerOutput, output: RunnerOutput) -> None:
        """Classifications (a classifier) or embeddings (an embedder), in one forward pass."""
        items = scheduler_output.one_pass
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
            for slot in p.slots:
                if not 0 <= slot < self.max_num_seqs:
                    raise ValueError(f"slot {slot} is outside 0..{self.max_num_seqs - 1}")
            if len(p.slots) != p.sampling.num_beams:
                raise ValueError(f"{len(p.slots)} slots for num_beams {p.sampling.num_beams}")
            if not 0 < len(p.prompt_ids) <= self.max_input_len:
                errors[p.request_id] = (f"{len(p.prompt_ids)} input tokens; 1 to "
                                        f"{self.max_input_len} allowed")
            elif p.sampling.max_new_tokens > self.max_len:
                errors[p.request_id] = (f"max_new_tokens {p.sampling.max_new_tokens} exceeds the "
                                        f"runner's max_len {self.max_len}")
            else:
                try:
                    matchers[p.request_id] = self._matcher(p)
                except GrammarError as exc:
                    errors[p.request_id] = str(exc)
                    continue
                accepted.append(p)
        return accepted

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
        encoded = t5.encode(model.weights, input_ids.to(device), torch.tensor(lengths, device=device),
                            between_layers)
        for p, length in zip(prefills, lengths):
            for slot in p.slots:
                self._free(slot)  # a slot reused without being reported free
            cross_row = len(self.cross_slots)
            self.cross_slots.append(list(p.slots))
            self.cache.cross_kv.zero(cross_row)
            matcher = matchers.get(p.request_id)
            for beam, slot in enumerate(p.slots):  # a beam search's beams start alike
                generator = None if p.sampling.is_greedy else make_generator(p.sampling.seed, device)
                self.slots[slot] = SlotState(
                    p.request_id, p.sampling, length, [model.decoder_start_token_id], generator,
                    row=len(self.row_slots), cross_row=cross_row,
                    matcher=matcher.fork() if matcher is not None and beam else matcher)
                self.cache.self_kv.zero(len(self.row_slots))
                self.row_slots.append(slot)
            if p.sampling.is_beam_search:
                scores = torch.tensor(initial_scores(len(p.slots)), dtype=torch.float32, device=device)
                self.beams[p.request_id] = BeamRows(p.request_id, p.slots, scores)
        self._fit_cache(between_layers)
        rows = torch.tensor([self.slots[p.slot].cross_row for p in prefills], device=device)
        for i, layer in enumerate(model.weights.decoder):
            keys, values = t5.cross_keys_values(model.weights, encoded, layer)
            self.cache.write_cross(i, rows, keys, values)
            if between_layers is not None:
                between_layers()

    def _fit_cache(self, between_layers: Callable[[], None] | None = None) -> None:
        """Cache capacities for the longest decoder and encoder lengths among occupied rows."""
        states = self.slots.values()
        self.cache.fit(max(s.position for s in states) + 1, max(s.input_len for s in states),
                       len(self.row_slots), between_layers, num_cross_used=len(self.cross_slots))

    def _free(self, slot: int) -> None:
        """Drop the slot's sequence; the sequence in the last row moves into its row. Its
        request's cross row goes the same way once no sequence reads it."""
        state = self.slots.pop(slot, None)
        if state is None:
            return
        self.beams.pop(state.request_id, None)
        last_slot = self.row_slots.pop()
        if last_slot != slot:
            moved = self.slots[last_slot]
            self.cache.self_kv.move(moved.row, state.row)
            moved.row = state.row
            self.row_slots[state.row] = last_slot
        readers = self.cross_slots[state.cross_row]
        readers.remove(slot)
        if not readers:
            last = self.cross_slots.pop()
            if state.cross_row < len(self.cross_slots):
                self.cache.cross_kv.move(len(self.cross_slots), state.cross_row)
                self.cross_slots[state.cross_row] = last
                for reader in last:
                    self.slots[reader].cross_row = state.cross_row

    def _follow_beams(self, steps: list[BeamStep]) -> None:
        """Each beam search's beams continue as its step says (kernels/beam.py: follow), then
        append their tokens; the KV rows to copy go in one gather."""
        sources, targets = [], []
        for step in steps:
            beam = self.beams.get(step.request_id)
            if beam is None:
                raise ValueError(f"request {step.request_id} holds no beam search here")
            if beam.num_generated == step.num_generated:
                continue  # applied already: a step that failed is being run again
            children, copies = follow([self.slots[slot] for slot in beam.slots], step.parents)
            for slot, child, token in zip(beam.slots, children, step.token_ids):
                self.slots[slot] = child
                self.row_slots[child.row] = slot
                child.append(token)
            beam.scores = torch.tensor(step.scores, dtype=torch.float32, device=beam.scores.device)
            beam.num_generated = step.num_generated
            sources += [source for source, _ in copies]
            targets += [target for _, target in copies]
        if sources:
            self.cache.self_kv.copy_rows(sources, targets)

    def _decode(self, slots: list[int], between_layers: Callable[[], None] | None = None
                ) -> tuple[dict[str, int], dict[str, BeamCandidates]]:
        """One decoder step of these slots' sequences: a token for each single sequence, the
        candidates of each beam search."""
        model = self._need(self.generator, "generator")
        for slot in slots:
            state = self.slots.get(slot)
            if state is None:
                raise ValueError(f"slot {slot} holds no sequence; it must be prefilled first")
            if state.position >= self.max_len:
                raise ValueError(f"request {state.request_id} reached the runner's max_len {self.max_len}")
        slots = sorted(slots, key=lambda slot: self.slots[slot].row)  # consecutive rows: read by slicing
        states = [self.slots[slot] for slot in slots]
        self._fit_cache(between_layers)
        batch = self.cache.step_batch([s.row for s in states], [s.position for s in states],
                                      [s.input_len for s in states], [s.cross_row for s in states])
        last_tokens = torch.tensor([s.token_ids[-1] for s in states], device=model.device)
        logits = t5.decode_step(model.weights, self.cache, batch, last_tokens,
                                between_layers)  # [n, vocab]
        searches = self._searches(slots)
        in_beams = {i for _, beams in searches for i in beams}
        single = [i for i in range(len(states)) if i not in in_beams]
        tokens = {}
        if single:  # before beam_candidates overwrites the logits
            chosen = choose_tokens(logits[single] if searches else logits, [states[i] for i in single],
                                   model.eos_token_id)
            for i, token in zip(single, chosen):
                states[i].append(token)
                tokens[states[i].request_id] = token
        return tokens, beam_candidates(logits, searches, states, model.eos_token_id) if searches else {}

    def _searches(self, slots: list[int]) -> list[tuple[BeamRows, list[int]]]:
        """The beam searches among a step's slots, each with its beams' indices in `slots`."""
        index_of = {slot: i for i, slot in enumerate(slots)}
        searches = []
        for beam in self.beams.values():
            beams = [index_of.get(slot) for slot in beam.slots]
            if None in beams and any(i is not None for i in beams):
                raise ValueError(f"request {beam.request_id}: a beam search decodes all its beams or none")
            if beams[0] is not None:
                searches.append((beam, beams))
        return searches

    @property
    def grammars(self) -> GrammarCompiler:
        """Compiles the generator's regex / JSON-schema constraints."""
        if self._grammars is None:
            self._grammars = GrammarCompiler.for_model(self._need(self.generator, "generator"))
        return self._grammars

    def _matcher(self, p: PrefillInput):
        if p.sampling.regex is None and p.sampling.json_schema is None:
            return None
        return self.grammars.matcher(p.sampling.regex, p.sampling.json_schema)

    @staticmethod
    def _need(model, role: str):
        if model is None:
            raise ValueError(f"this step asks for the {role}, but the runner was built without one")
        return model
