"""The coach's work on the engine: analyze the feedback, sentence by sentence, and rewrite the
critical ones.

Analyze classifies every sentence in one submission. Improve rewrites each critical sentence on
its own and keeps the constructive ones word for word: the rewriter was trained on short pieces
of negative feedback, a sentence stays well inside its input limit, the person keeps what they
wrote well, and the critical sentences are generated side by side in the engine's continuous
batch. The answer joins the sentences with the original text between them (spaces, line breaks,
bullets); a rewrite that comes out empty keeps the sentence.

Each sentence is read by `task.verdict`: its kind is the one whose labels hold more of the
classifier's probability, and it is `unsure` when that kind holds less than `MIN_SURE_SHARE`.
Improve rewrites the critical sentences, unsure or not, and keeps every sentence whose likelier kind
is constructive as it was written: a rewrite must never make feedback worse.

The rewriter answers each sentence with its n best sequences (beam search); the coach shows the first
that claims nothing the sentence and context lack, reads as fluent and is not read as critical by the
classifier itself, preferring one that keeps the sentence's subject and problem (`choose`). When none
passes, the sentence is kept and `rewrite_warning` says why.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from scheduler.request import Task
from scheduler.sampling_params import SamplingParams, SamplingRequest
from takeoff.engine.engine import Engine
from takeoff.engine.stream import RequestStream
from takeoff.engine.submission import Submission
from takeoff.feedback.choose import NUM_CANDIDATES, judge, mark_critical, no_rewrite_warning, pick
from takeoff.feedback.sentences import Sentence
from takeoff.feedback.task import rewrite_prompt, verdict

# Beam search's n best, to choose from. Blocking a repeated run of 4 tokens stops the small rewriter's
# loops ("the mistakes in the mistakes in the..."); 4 beams and runs of 4 were chosen on the
# development set (recipes.evaluate, the app's pick over the n best).
REWRITE_SAMPLING = SamplingParams(max_new_tokens=128, no_repeat_ngram_size=4, num_beams=NUM_CANDIDATES,
                                  num_return_sequences=NUM_CANDIDATES, length_penalty=1.0)
# As the engine takes it: the decoding chosen, except that the length and the beams are defaults a
# server's caps may lower (a reader with fewer KV slots than beams runs fewer, and returns as many).
LOWERED = ("max_new_tokens", "num_beams", "num_return_sequences")
REWRITE_REQUEST = SamplingRequest(
    {name: value for name, value in asdict(REWRITE_SAMPLING).items() if name not in LOWERED},
    {name: getattr(REWRITE_SAMPLING, name) for name in LOWERED})
# The rewriter was only ever trained with a context; this one stands in when none is given.
DEFAULT_CONTEXT = "You are giving feedback to a colleague on their work"


@dataclass
class AnalyzedSentence:
    text: str
    start: int
    end: int
    label: str
    score: float  # the classifier's probability for `label`
    kind: str  # "constructive" | "critical"
    unsure: bool  # the classifier leans to `kind` too little to say


@dataclass
class Feedback:
    """One request's feedback: its text, context and analyzed sentences."""
    text: str
    context: str
    sentences: list[AnalyzedSentence]

    @property
    def prompt_context(self) -> str:
        return self.context.strip() or DEFAULT_CONTEXT

    def needs_rewrite(self, index: int) -> bool:
        return self.sentences[index].kind == "critical"

    @property
    def kind(self) -> str:
        critical = any(s.kind == "critical" for s in self.sentences)
        return "critical" if critical else "constructive"

    def separator_before(self, index: int) -> str:
        """The original text between sentence `index - 1` and sentence `index` (bullets, breaks)."""
        if index == 0:
            return ""
        between = self.text[self.sentences[index - 1].end:self.sentences[index].start]
        return between.replace("\r\n", "\n").replace("\r", "\n")

    def analysis(self) -> dict:
        return {"sentences": [asdict(s) for s in self.sentences], "kind": self.kind}


async def analyze(engine: Engine, text: str, context: str,
                  sentences: list[Sentence]) -> Feedback:
    """Each sentence classified on its own, as the classifier was trained; the context only
    matters to the rewrite."""
    readings = await read_kinds(engine, [s.text for s in sentences])
    analyzed = [AnalyzedSentence(s.text, s.start, s.end, r.label, r.score, r.kind, r.unsure)
                for s, r in zip(sentences, readings)]
    return Feedback(text, context, analyzed)


async def read_kinds(engine: Engine, texts: list[str]) -> list:
    """`task.verdict` of each text, classified in one submission."""
    if not texts:
        return []
    async with engine.submit(Task.CLASSIFY, texts) as work:
        rows = await work.results()
    return [verdict(row, work.labels) for row in rows]


class Rewrite:
    """One critical sentence's rewrite: the rewriter's n best, and the one the coach shows (`text`,
    None when none passes, and then `warning` says why). The engine generates every submitted
    rewrite at once, so settling them one sentence after another costs no concurrency."""

    def __init__(self, index: int, sentence: str, stream: RequestStream):
        self.index = index  # of the sentence it replaces
        self.sentence = sentence
        self.stream = stream
        self.text: str | None = None
        self.warning: str | None = None

    async def settle(self, engine: Engine, context: str) -> None:
        """Wait for the sequences, and pick: the checks on the text first, then the classifier's
        reading of the candidates that pass them."""
        async for _ in self.stream:
            pass  # a beam search sends nothing before its end
        candidates = judge([c.text for c in self.stream.result.choices()], self.sentence, context)
        passing = [c.text for c in candidates if c.passes]
        critical = {t for t, r in zip(passing, await read_kinds(engine, passing)) if r.kind == "critical"}
        candidates = mark_critical(candidates, critical)
        chosen = pick(candidates)
        self.text = chosen.text if chosen else None
        self.warning = None if chosen else no_rewrite_warning(candidates)


async def submit_rewrites(engine: Engine, feedback: Feedback) -> tuple[Submission, list[Rewrite]]:
    """Every sentence that needs it, submitted at once (all admitted, or none)."""
    indices = [i for i in range(len(feedback.sentences)) if feedback.needs_rewrite(i)]
    prompts = [rewrite_prompt(feedback.prompt_context, feedback.sentences[i].text)
               for i in indices]
    work = await engine.submit(Task.GENERATE, prompts, sampling=REWRITE_REQUEST)
    return work, [Rewrite(i, feedback.sentences[i].text, s) for i, s in zip(indices, work.streams)]


async def improved_pieces(engine: Engine, feedback: Feedback, rewrites: list[Rewrite]):
    """The improved text, one piece per sentence and separator, in the order of the original
    sentences; a sentence with no rewrite that passed is kept as it was."""
    rewrite_of = {rewrite.index: rewrite for rewrite in rewrites}
    for index, sentence in enumerate(feedback.sentences):
        separator = feedback.separator_before(index)
        if separator:
            yield separator
        if index in rewrite_of:
            await rewrite_of[index].settle(engine, feedback.prompt_context)
            yield rewrite_of[index].text or sentence.text
        else:
            yield sentence.text


def improve_result(feedback: Feedback, rewrites: list[Rewrite], text: str) -> dict:
    rewrite_of = {rewrite.index: rewrite for rewrite in rewrites}
    result = {"text": text, **feedback.analysis()}
    for index, sentence in enumerate(result["sentences"]):
        rewrite = rewrite_of.get(index)
        sentence["rewrite"] = rewrite.text if rewrite else None
        sentence["rewrite_warning"] = rewrite.warning if rewrite else None
    return result
