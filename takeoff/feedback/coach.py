"""The coach's work on the engine: analyze the feedback, sentence by sentence, and rewrite the
critical ones.

Analyze classifies every sentence in one submission. Improve rewrites each critical sentence on
its own and keeps the constructive ones word for word: the rewriter was trained on short pieces
of negative feedback, a sentence stays well inside its input limit, the person keeps what they
wrote well, and the critical sentences are generated side by side in the engine's continuous
batch. The answer joins the sentences with the original text between them (spaces, line breaks,
bullets); a rewrite that comes out empty keeps the sentence.

Each sentence is read by `task.verdict`: its kind is the one whose labels hold more of the
classifier's probability, and it is `unsure` when that kind holds less than `MIN_SURE_SHARE`;
improve rewrites the critical sentences and the unsure ones, since a critical sentence left as it
was costs the person more than a rewrite they can ignore. A rewrite that says something its
sentence and the context do not (`claims.introduced_claims`) carries a warning to check it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from scheduler.request import Task
from scheduler.sampling_params import SamplingParams, SamplingRequest
from takeoff.engine.engine import Engine
from takeoff.engine.stream import RequestStream
from takeoff.engine.submission import Submission
from takeoff.feedback.claims import introduced_claims, rewrite_warning
from takeoff.feedback.sentences import Sentence
from takeoff.feedback.task import rewrite_prompt, verdict

# Greedy, as the rewriter was evaluated. Blocking a repeated run of 6 tokens cuts the small rewriter's
# occasional loops ("The'sssss...") short, yet lets a rewrite name its subject twice: with runs of 3,
# "the new dessert menu" came out the second time as "the newssterur mened".
REWRITE_SAMPLING = SamplingParams(max_new_tokens=128, no_repeat_ngram_size=6)
# As the engine takes it: every setting chosen, except that the length is a default the server's
# cap may lower.
REWRITE_REQUEST = SamplingRequest(
    {name: value for name, value in asdict(REWRITE_SAMPLING).items() if name != "max_new_tokens"},
    {"max_new_tokens": REWRITE_SAMPLING.max_new_tokens})
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
    unsure: bool  # the classifier leans to `kind` too little to say; improve rewrites it anyway


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
        sentence = self.sentences[index]
        return sentence.kind == "critical" or sentence.unsure

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
    async with engine.submit(Task.CLASSIFY, [s.text for s in sentences]) as work:
        rows = await work.results()
    analyzed = []
    for sentence, row in zip(sentences, rows):
        reading = verdict(row, work.labels)
        analyzed.append(AnalyzedSentence(sentence.text, sentence.start, sentence.end, reading.label,
                                         reading.score, reading.kind, reading.unsure))
    return Feedback(text, context, analyzed)


class Rewrite:
    """One critical sentence's rewrite. The engine generates every submitted rewrite at once and
    buffers its pieces, so reading them one sentence after another costs no concurrency. A
    rewrite submitted without streaming comes as one piece, at its end."""

    def __init__(self, index: int, stream: RequestStream):
        self.index = index  # of the sentence it replaces
        self.stream = stream
        self.text = ""

    async def pieces(self):
        async for piece in self.stream:
            if piece := self._take(piece):
                yield piece
        if not self.text and (piece := self._take(self.stream.result.text)):
            yield piece

    def _take(self, piece: str) -> str:
        if not self.text:
            piece = piece.lstrip()  # the original separator already spaces it
        self.text += piece
        return piece


async def submit_rewrites(engine: Engine, feedback: Feedback,
                          stream: bool) -> tuple[Submission, list[Rewrite]]:
    """Every sentence that needs it, submitted at once (all admitted, or none)."""
    indices = [i for i in range(len(feedback.sentences)) if feedback.needs_rewrite(i)]
    prompts = [rewrite_prompt(feedback.prompt_context, feedback.sentences[i].text)
               for i in indices]
    work = await engine.submit(Task.GENERATE, prompts, sampling=REWRITE_REQUEST, stream=stream)
    return work, [Rewrite(i, s) for i, s in zip(indices, work.streams)]


async def improved_pieces(feedback: Feedback, rewrites: list[Rewrite]):
    """The improved text, piece by piece, in the order of the original sentences."""
    rewrite_of = {rewrite.index: rewrite for rewrite in rewrites}
    for index, sentence in enumerate(feedback.sentences):
        separator = feedback.separator_before(index)
        if separator:
            yield separator
        if index not in rewrite_of:
            yield sentence.text
            continue
        async for piece in rewrite_of[index].pieces():
            yield piece
        if not rewrite_of[index].text.strip():
            yield sentence.text  # an empty rewrite must not drop what the person said


def improve_result(feedback: Feedback, rewrites: list[Rewrite], text: str) -> dict:
    rewritten = {rewrite.index: rewrite.text.strip() or None for rewrite in rewrites}
    result = {"text": text, **feedback.analysis()}
    for index, sentence in enumerate(result["sentences"]):
        rewrite = sentence["rewrite"] = rewritten.get(index)
        claims = introduced_claims(rewrite, sentence["text"], feedback.prompt_context) if rewrite else []
        sentence["rewrite_warning"] = rewrite_warning(claims)
    return result
