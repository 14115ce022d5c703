"""The feedback coach over HTTP: its page, `/v1/feedback/analyze` and `/v1/feedback/improve`
(the work itself: takeoff/feedback/coach.py).

Improve answers `{"text", "kind", "sentences": [... "rewrite": str | null, "rewrite_warning": str |
null]}` ("rewrite" null and a warning when no rewrite passed the coach's checks). With `stream:
true`, SSE `data` events carry the pieces of "text" in order (one per sentence and separator) and a last
`event: result` carries that JSON (`event: error` with the error JSON if the engine fails mid-way).
The routes are mounted only on a server that can serve the coach (takeoff/app.py).
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from sse_starlette.sse import ServerSentEvent
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from takeoff.api.http import engine_of, read_json, unless_disconnected
from takeoff.api.schemas import parse
from takeoff.api.sse import EventStream
from takeoff.feedback.coach import DEFAULT_CONTEXT, Feedback, Rewrite, analyze as analyze_feedback, \
    improve_result, improved_pieces, submit_rewrites
from takeoff.feedback.schemas import MAX_TEXT_CHARS, FeedbackBody
from takeoff.feedback.task import CONSTRUCTIVE_LABELS, CRITICAL_LABELS

STATIC_DIR = Path(__file__).parent / "static"
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


async def analyze(request: Request) -> JSONResponse:
    body = parse(FeedbackBody, await read_json(request))
    feedback = await unless_disconnected(request, analyze_feedback(
        engine_of(request), body.text, body.context, body.sentences))
    return JSONResponse(feedback.analysis())


async def improve(request: Request):
    body = parse(FeedbackBody, await read_json(request))
    engine = engine_of(request)
    feedback = await unless_disconnected(request, analyze_feedback(
        engine, body.text, body.context, body.sentences))
    work, rewrites = await submit_rewrites(engine, feedback)
    if body.stream:
        return EventStream(_improve_events(engine, feedback, rewrites), work)
    async with work:
        pieces = await unless_disconnected(request, _collect(improved_pieces(engine, feedback, rewrites)))
    return JSONResponse(improve_result(feedback, rewrites, "".join(pieces)))


async def _collect(pieces) -> list[str]:
    return [piece async for piece in pieces]


async def _improve_events(engine, feedback: Feedback, rewrites: list[Rewrite]):
    """SSE events: text pieces as `data`, then `event: result` with the final JSON."""
    pieces = []
    async for piece in improved_pieces(engine, feedback, rewrites):
        if piece:
            pieces.append(piece)
            yield ServerSentEvent(data=piece)
    result = improve_result(feedback, rewrites, "".join(pieces))
    yield ServerSentEvent(data=json.dumps(result), event="result")
