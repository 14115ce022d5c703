"""The feedback coach: its page, `/v1/feedback/analyze` and `/v1/feedback/improve`.

Analyze splits the feedback into sentences and classifies them all in one batched call. Improve
rewrites each critical sentence on its own and keeps the constructive ones word for word: the
rewriter was trained on short pieces of negative feedback, a sentence stays well inside its input
limit, the person keeps what they wrote well, and the critical sentences are generated side by
side in the engine's continuous batch. The answer joins the sentences with the original text
between them (spaces, line breaks, bullets); a rewrite that comes out empty keeps the sentence.

Each sentence is read by `task.verdict`: its kind is the one whose labels hold more of the
classifier's probability, and it is `unsure` when that kind holds less than `MIN_SURE_SHARE`; improve
rewrites the critical sentences and the unsure ones, since a critical sentence left as it was costs
the person more than a rewrite they can ignore.

Improve answers `{"text", "kind", "sentences": [... "rewrite": str | null, "rewrite_warning": str |
null]}`: a rewrite that says something its sentence and the context do not (a time, a deadline or
delay, a number, a name, an event: `claims.introduced_claims`) carries a warning to check it. With
`stream: true`, SSE `data` events carry the pieces of "text" in order and a last `event: result`
carries that JSON (`event: error` with the error JSON if the engine fails mid-way).
"""
from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import field_validator, model_validator
from sse_starlette.sse import ServerSentEvent
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from scheduler.sampling_params import SamplingParams, SamplingRequest
from takeoff.api.http import read_json, unless_disconnected
from takeoff.api.schemas import Body, parse, text_field
from takeoff.api.sse import EventStream
from takeoff.errors import bad_request, too_large
from takeoff.feedback.claims import introduced_claims, rewrite_warning
from takeoff.feedback.sentences import split_sentences
from takeoff.feedback.task import CONSTRUCTIVE_LABELS, CRITICAL_LABELS, rewrite_prompt, verdict

STATIC_DIR = Path(__file__).parent / "static"
MAX_TEXT_CHARS = 5000
MAX_CONTEXT_CHARS = 1000
MAX_SENTENCES = 64
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
# What each label means, for the page's legend.
LABEL_HINTS = {
    "Positive Comment": "praises something specific",
    "Helpful Suggestion": "proposes a concrete next step",
    "Balanced Criticism": "names a problem with care and a way forward",
    "Vague Criticism": "a complaint with nothing to act on",
    "Harsh Criticism": "needlessly severe about the work",
    "Sarcastic Comment": "mocks instead of saying what is wrong",
    "Blameful Accusation": "assigns fault instead of solving the problem",
    "Personal Attack": "targets the person, not the work",
    "Threat": "presses with consequences",
}
KIND_ICONS = {"constructive": "✓", "critical": "⚠"}


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


def routes() -> list:
    return [
        Route("/", page, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/v1/feedback/analyze", analyze, methods=["POST"]),
        Route("/v1/feedback/improve", improve, methods=["POST"]),
    ]


async def page(request: Request) -> HTMLResponse:
    template = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    filled = (template.replace("{{legend}}", _legend_html())
              .replace("{{default_context}}", html.escape(DEFAULT_CONTEXT))
              .replace("{{max_chars}}", str(MAX_TEXT_CHARS)))
    return HTMLResponse(filled, headers={"Cache-Control": "no-cache"})


def _legend_html() -> str:
    """The nine labels from feedback_task, so the page never lists a different set."""
    columns = []
    for kind, labels in (("constructive", CONSTRUCTIVE_LABELS), ("critical", CRITICAL_LABELS)):
        items = "".join(
            f'<li><span class="tag {kind}">{KIND_ICONS[kind]} {html.escape(label)}</span>'
            f'<span class="hint">{html.escape(LABEL_HINTS.get(label, ""))}</span></li>'
            for label in labels)
        columns.append(f'<div><h3 class="verdict {kind}">{KIND_ICONS[kind]} {kind.capitalize()}'
                       f'</h3><ul>{items}</ul></div>')
    return "".join(columns)


class FeedbackBody(Body):
    text: str
    context: str = ""
    stream: bool = False

    _check_text = field_validator("text", mode="before")(text_field)

    @model_validator(mode="after")
    def _within_limits(self) -> FeedbackBody:
        for name, limit in (("text", MAX_TEXT_CHARS), ("context", MAX_CONTEXT_CHARS)):
            length = len(getattr(self, name))
            if length > limit:
                raise too_large(f"'{name}' is {length} characters; the limit is {limit}", name)
        return self


async def analyze(request: Request) -> JSONResponse:
    body = parse(FeedbackBody, await read_json(request))
    feedback = await unless_disconnected(
        request, _analyze(request.app.state.engine, body.text, body.context))
    return JSONResponse(feedback.analysis())


async def improve(request: Request):
    body = parse(FeedbackBody, await read_json(request))
    engine = request.app.state.engine
    feedback = await unless_disconnected(request, _analyze(engine, body.text, body.context))
    rewrites = await _submit_rewrites(engine, feedback, stream=body.stream)
    if body.stream:
        return EventStream(_improve_events(feedback, rewrites), lambda: _close_all(rewrites))
    try:
        pieces = await unless_disconnected(request, _collect(_improved_pieces(feedback, rewrites)))
    finally:
        await _close_all(rewrites)
    return JSONResponse(_improve_result(feedback, rewrites, "".join(pieces)))


async def _collect(pieces) -> list[str]:
    return [piece async for piece in pieces]


async def _analyze(engine, text: str, context: str) -> Feedback:
    """Each sentence classified on its own, as the classifier was trained; the context only
    matters to the rewrite."""
    sentences = split_sentences(text)
    if not sentences:
        raise bad_request("'text' has no sentences to analyze", "text")
    if len(sentences) > MAX_SENTENCES:
        raise too_large(f"'text' has {len(sentences)} sentences; the limit is {MAX_SENTENCES}",
                        "text")
    rows, labels = await engine.classify([s.text for s in sentences])
    analyzed = []
    for sentence, row in zip(sentences, rows):
        reading = verdict(row, labels)
        analyzed.append(AnalyzedSentence(sentence.text, sentence.start, sentence.end, reading.label,
                                         reading.score, reading.kind, reading.unsure))
    return Feedback(text, context, analyzed)


class Rewrite:
    """One critical sentence's rewrite. The engine generates every submitted rewrite at once and
    buffers its pieces, so reading them one sentence after another costs no concurrency. A
    rewrite submitted without streaming comes as one piece, at its end."""

    def __init__(self, index: int, stream):
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


async def _submit_rewrites(engine, feedback: Feedback, stream: bool) -> list[Rewrite]:
    """Submit every critical sentence at once; a refusal (429, 413, ...) withdraws the others."""
    group = engine.resolve_group(None, "generate")
    rewrites: list[Rewrite] = []
    try:
        for index, sentence in enumerate(feedback.sentences):
            if feedback.needs_rewrite(index):
                prompt = rewrite_prompt(feedback.prompt_context, sentence.text)
                rewrites.append(Rewrite(index, engine.generate_stream(prompt, REWRITE_REQUEST,
                                                                      group, stream=stream)))
    except BaseException:
        await _close_all(rewrites)
        raise
    return rewrites


async def _improved_pieces(feedback: Feedback, rewrites: list[Rewrite]):
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


async def _improve_events(feedback: Feedback, rewrites: list[Rewrite]):
    """SSE events: text pieces as `data`, then `event: result` with the final JSON."""
    pieces = []
    async for piece in _improved_pieces(feedback, rewrites):
        if piece:
            pieces.append(piece)
            yield ServerSentEvent(data=piece)
    result = _improve_result(feedback, rewrites, "".join(pieces))
    yield ServerSentEvent(data=json.dumps(result), event="result")


def _improve_result(feedback: Feedback, rewrites: list[Rewrite], text: str) -> dict:
    rewritten = {rewrite.index: rewrite.text.strip() or None for rewrite in rewrites}
    result = {"text": text, **feedback.analysis()}
    for index, sentence in enumerate(result["sentences"]):
        rewrite = sentence["rewrite"] = rewritten.get(index)
        claims = introduced_claims(rewrite, sentence["text"], feedback.prompt_context) if rewrite else []
        sentence["rewrite_warning"] = rewrite_warning(claims)
    return result


async def _close_all(rewrites: list[Rewrite]) -> None:
    """Abort every rewrite still running. One after another, with no task in between: this runs
    in the `finally` of a cancelled SSE generator, where anything that waits is cancelled too."""
    for rewrite in rewrites:
        await rewrite.stream.aclose()
