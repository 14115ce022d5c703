"""Stand-ins for the tokenizer and the model runner, so the scheduler is tested without a model."""
from __future__ import annotations

from dataclasses import replace

from scheduler.output import BeamCandidates, RunnerOutput, SchedulerOutput
from scheduler.request import Request, Task
from scheduler.sampling_params import SamplingParams
from scheduler.scheduler import SchedulerConfig
from takeoff.config import ServerConfig

EOS = 1


class _Vocab:
    """Token ids handed out on first sight of a piece; id EOS is the special end token."""

    def __init__(self, eos_piece) -> None:
        self._pieces = {EOS: eos_piece}
        self._ids: dict = {}

    def ids(self, pieces: list) -> list[int]:
        for piece in pieces:
            if piece not in self._ids:
                self._ids[piece] = len(self._ids) + 2
                self._pieces[self._ids[piece]] = piece
        return [self._ids[p] for p in pieces]


class ByteTokenizer(_Vocab):
    """A byte-level vocabulary: each token is an arbitrary byte string, so one character may be
    split over several tokens and a token may end inside a character (as in GPT-2 style BPE)."""

    def __init__(self) -> None:
        super().__init__(b"</s>")

    def decode(self, ids: list[int]) -> str:
        data = b"".join(self._pieces[i] for i in ids if i != EOS)  # EOS is special: skipped
        return data.decode("utf-8", errors="replace")


class MetaspaceTokenizer(_Vocab):
    """SentencePiece-like: "\u2581" marks a space, and the leading space of the decoded text is
    dropped, so a token's text depends on whether it comes first."""

    def __init__(self) -> None:
        super().__init__("</s>")

    def decode(self, ids: list[int]) -> str:
        text = "".join(self._pieces[i] for i in ids if i != EOS).replace("\u2581", " ")
        return text[1:] if text.startswith(" ") else text


class FakeRunner:
    """Plays the kernels' part: remembers which request owns each slot (as the real runner keeps
    per-slot state), and answers each step with the next token of that request's script (a beam
    search: the next candidates of its script, or 2 * num_beams made-up ones that never end)."""

    def __init__(self, scripts: dict[str, list[int]] | None = None, filler: int = 7,
                 beam_scripts: dict[str, list[BeamCandidates]] | None = None) -> None:
        self.scripts = scripts or {}
        self.filler = filler  # token for requests without a script
        self.beam_scripts = beam_scripts or {}
        self.slot_owner: dict[int, str] = {}
        self.num_beams: dict[str, int] = {}  # beam searches' request ids
        self.position: dict[str, int] = {}
        self.steps: list[SchedulerOutput] = []

    def execute(self, so: SchedulerOutput, between_layers=None) -> RunnerOutput:
        self.steps.append(so)
        for slot in so.freed_slots:
            self.slot_owner.pop(slot, None)
        for item in so.prefill:
            for slot in item.slots:
                assert slot not in self.slot_owner, f"slot {slot} handed out twice"
                self.slot_owner[slot] = item.request_id
            if item.sampling.is_beam_search:
                self.num_beams[item.request_id] = len(item.slots)
        out = RunnerOutput()
        for item in so.one_pass:
            out.probabilities[item.request_id] = [0.25, 0.75]
        slots = [s for p in so.prefill for s in p.slots] + so.decode_slots
        for request_id in dict.fromkeys(self.slot_owner[slot] for slot in slots):
            if request_id in self.num_beams:
                out.beam_candidates[request_id] = self._candidates(request_id)
            else:
                out.next_token_ids[request_id] = self._next(request_id)
        return out

    def _candidates(self, request_id: str) -> BeamCandidates:
        i = self.position.get(request_id, 0)
        self.position[request_id] = i + 1
        script = self.beam_scripts.get(request_id)
        if script is not None:
            return script[i]
        k = self.num_beams[request_id]
        return BeamCandidates([j % k for j in range(2 * k)], [self.filler + j for j in range(2 * k)],
                              [-1.0 - i - j for j in range(2 * k)])

    def _next(self, request_id: str) -> int:
        script = self.scripts.get(request_id)
        if script is None:
            return self.filler
        i = self.position.get(request_id, 0)
        self.position[request_id] = i + 1
        return script[i]


def scheduler_config(**overrides) -> SchedulerConfig:
    """The server's defaults (takeoff/config.py), as the engine passes them, with overrides."""
    return replace(SchedulerConfig(max_num_seqs=ServerConfig.max_num_seqs,
                                   max_num_batched_tokens=ServerConfig.max_num_batched_tokens,
                                   max_classify_batch=ServerConfig.max_classify_batch,
                                   queue_timeout_s=ServerConfig.queue_timeout), **overrides)


def step(scheduler, runner: FakeRunner, now: float = 1.0):
    """One engine step: schedule, run, update. Returns (scheduler_output, request_outputs)."""
    so = scheduler.schedule(now=now)
    return so, scheduler.update(so, runner.execute(so), now=now)


def gen(request_id: str, num_prompt: int = 4, arrival_time: float = 0.0, **sampling) -> Request:
    sampling.setdefault("max_new_tokens", 100)
    return Request(request_id, Task.GENERATE, list(range(2, 2 + num_prompt)),
                   SamplingParams(**sampling), eos_token_id=EOS, arrival_time=arrival_time)


def cls(request_id: str, num_tokens: int = 4, arrival_time: float = 0.0) -> Request:
    return Request(request_id, Task.CLASSIFY, list(range(2, 2 + num_tokens)),
                   arrival_time=arrival_time)


def embed(request_id: str, num_tokens: int = 4, arrival_time: float = 0.0) -> Request:
    return Request(request_id, Task.EMBED, list(range(2, 2 + num_tokens)),
                   arrival_time=arrival_time)


def decode_ids(ids: list[int]) -> str:
    """The simplest decode: every token is visible text, EOS is skipped as special."""
    return "".join(f"<{i}>" for i in ids if i != EOS)
