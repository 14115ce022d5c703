"""The feedback coach in headless Chromium: type, analyze, read the labels, improve, copy."""
from __future__ import annotations

import json

import pytest

from takeoff.feedback.task import LABELS, kind_of
from tests.e2e.conftest import ROOT
from tests.feedback_models import LEARNED

pytestmark = pytest.mark.e2e

CONSTRUCTIVE = "Thanks for the clear sprint demo."
CRITICAL = "You never listen to anyone."
SCREENSHOT = ROOT / "artifacts" / "feedback-page.png"
TIMEOUT_MS = 120_000  # the demo rewriter on a busy CPU


def test_the_sentences_are_ones_the_tiny_classifier_learned():
    assert kind_of(LEARNED[CONSTRUCTIVE]) == "constructive"
    assert kind_of(LEARNED[CRITICAL]) == "critical"


async def test_analyze_then_improve_in_the_browser(page):
    await page.goto("/")
    await page.fill("#context", "A team lead gives feedback to an engineer after a sprint")
    await page.fill("#feedback", f"{CONSTRUCTIVE} {CRITICAL}")
    assert await page.inner_text("#feedback-count") == "61 / 5000 characters"
    await page.focus("#feedback")
    await page.keyboard.press("Control+Enter")  # the keyboard shortcut for Analyze

    sentences = page.locator("#result .sentence")
    await sentences.nth(1).wait_for(timeout=TIMEOUT_MS)
    assert await sentences.count() == 2
    shown = []
    for i in range(2):
        sentence = sentences.nth(i)
        label = await sentence.get_attribute("data-label")
        kind = await sentence.get_attribute("data-kind")
        assert label in LABELS
        assert kind == kind_of(label)
        assert label in await sentence.inner_text()  # the label is written, not only coloured
        shown.append(kind)
    assert shown == ["constructive", "critical"]
    assert await page.locator("#verdict").inner_text() == "⚠ critical: 1 of 2 sentences critical"

    # Each SSE piece is written into #improved as it is read: count those writes.
    await page.evaluate("""() => {
        window.improvedWrites = 0;
        new MutationObserver((records) => { window.improvedWrites += records.length; }).observe(
            document.querySelector('#improved'),
            {childList: true, characterData: true, subtree: true});
    }""")
    await page.click("#improve")  # its handler disables the buttons before it awaits anything
    await page.wait_for_function("""() => !document.querySelector('#improve').disabled
        && document.querySelector('#improved').getAttribute('aria-busy') === 'false'""",
                                 timeout=TIMEOUT_MS)
    assert not await page.locator("#error").is_visible(), await page.inner_text("#error")
    improved = await page.inner_text("#improved")
    writes = await page.evaluate("window.improvedWrites")
    assert improved.startswith(CONSTRUCTIVE)  # the constructive sentence is kept as it was
    if improved == f"{CONSTRUCTIVE} {CRITICAL}":  # no rewrite passed the checks: the page says so
        warnings = await page.inner_text("#warnings")
        assert CRITICAL in warnings and "kept as you wrote it" in warnings, warnings
    else:
        assert CRITICAL not in improved  # the critical one was rewritten
    assert writes >= 4  # cleared, then piece by piece, then the final text: not in one lump

    await page.click("#copy")
    await page.wait_for_selector("#copy-status:has-text('Copied')")
    assert await page.evaluate("navigator.clipboard.readText()") == improved

    SCREENSHOT.parent.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert page.errors == []


@pytest.mark.parametrize("status, headers, message, shown", [
    (429, {"Retry-After": "7"}, "queue full", "The server is busy. Try again in 7 seconds."),
    (413, {}, "'text' is 6000 characters; the limit is 5000",
     "Your feedback is too long: 'text' is 6000 characters; the limit is 5000"),
    (400, {}, "'context' must be a string", "Error 400: 'context' must be a string"),
])
async def test_server_errors_are_explained(page, status, headers, message, shown):
    body = json.dumps({"error": {"message": message, "type": "x", "param": None}})

    async def refuse(route):
        await route.fulfill(status=status, headers=headers, body=body,
                            content_type="application/json")

    await page.route("**/v1/feedback/*", refuse)
    await page.goto("/")
    await page.fill("#feedback", CRITICAL)
    await page.click("#analyze")
    error = page.locator("#error")
    await error.wait_for(state="visible")
    assert await error.inner_text() == shown
    assert await error.get_attribute("role") == "alert"
    assert not await page.locator("#analyze").is_disabled()  # ready for another try


async def test_the_page_is_labelled_and_lists_the_nine_labels(page):
    await page.goto("/")
    for field in ("feedback", "context", "api-key"):
        assert await page.locator(f"label[for='{field}']").count() == 1
    legend = await page.inner_text("#legend")
    assert all(label in legend for label in LABELS)
    await page.click("#analyze")  # nothing typed: the page says so instead of calling the server
    assert await page.inner_text("#error") == "Write or paste some feedback first."
    await page.fill("#feedback", "x" * 5001)
    await page.click("#analyze")
    assert await page.inner_text("#error") == (
        "Your feedback is too long: 5001 characters, the limit is 5000.")
    assert await page.locator("#result .sentence").count() == 0


async def test_streamed_pieces_and_a_late_error_are_shown(page):
    # CRLF and LF line ends, a piece over two data lines, a leading space kept, then an error.
    error = json.dumps({"error": {"message": "the engine failed", "type": "engine_error",
                                  "param": None}})
    body = (f"data: line one\r\ndata: line two\r\n\r\ndata:  and more\n\n"
            f"event: error\ndata: {error}\n\n")

    async def stream(route):
        await route.fulfill(status=200, body=body, content_type="text/event-stream")

    await page.route("**/v1/feedback/improve", stream)
    await page.goto("/")
    await page.fill("#feedback", CRITICAL)
    await page.click("#improve")
    await page.locator("#error").wait_for(state="visible")
    assert await page.inner_text("#error") == "the engine failed"
    assert await page.text_content("#improved") == "line one\nline two and more"
    assert await page.locator("#copy").is_disabled()


async def test_the_api_key_is_sent_and_remembered(page):
    seen = []

    async def answer(route):
        seen.append(route.request.headers.get("authorization"))
        await route.fulfill(status=401, content_type="application/json", body=json.dumps(
            {"error": {"message": "a valid API key is required", "type": "authentication_error",
                       "param": None}}))

    await page.route("**/v1/feedback/analyze", answer)
    await page.goto("/")
    await page.fill("#feedback", CRITICAL)
    await page.click("#analyze")
    await page.locator("#error").wait_for(state="visible")
    assert "needs an API key" in await page.inner_text("#error")
    await page.click("#key-box summary")
    await page.fill("#api-key", "s3cret")
    await page.locator("#api-key").dispatch_event("change")
    await page.reload()
    assert await page.input_value("#api-key") == "s3cret"  # kept in localStorage
    await page.fill("#feedback", CRITICAL)
    await page.click("#analyze")
    await page.wait_for_function("() => document.querySelector('#error').textContent !== ''")
    assert seen == [None, "Bearer s3cret"]


async def test_unsure_sentences_and_a_sentence_with_no_rewrite_are_explained(page):
    critical = {"text": CRITICAL, "start": 0, "end": len(CRITICAL), "label": "Vague Criticism",
                "score": 0.4, "kind": "critical", "unsure": True}
    start = len(CRITICAL) + 1
    constructive = {"text": CONSTRUCTIVE, "start": start, "end": start + len(CONSTRUCTIVE),
                    "label": "Positive Comment", "score": 0.45, "kind": "constructive", "unsure": True}
    text = f"{CRITICAL} {CONSTRUCTIVE}"
    warning = ("No rewrite of this sentence passed the checks (each one does not read well), so it is "
               "kept as you wrote it. Try saying what the problem is and what would help.")
    result = {"text": text, "kind": "critical", "sentences": [
        {**critical, "rewrite": None, "rewrite_warning": warning},
        {**constructive, "rewrite": None, "rewrite_warning": None}]}

    async def analyze(route):
        await route.fulfill(status=200, content_type="application/json",
                            body=json.dumps({"kind": "critical", "sentences": [critical, constructive]}))

    async def improve(route):
        await route.fulfill(status=200, content_type="text/event-stream",
                            body=f"data: {text}\n\nevent: result\ndata: {json.dumps(result)}\n\n")

    await page.route("**/v1/feedback/analyze", analyze)
    await page.route("**/v1/feedback/improve", improve)
    await page.goto("/")
    await page.fill("#feedback", text)
    await page.click("#analyze")
    shown = page.locator("#result .sentence")
    await shown.nth(1).wait_for()
    assert await shown.first.get_attribute("data-unsure") == "true"
    assert "(unsure)" in await shown.first.inner_text()
    assert "Improve rewrites it in case." in await shown.first.get_attribute("title")
    assert "Improve keeps it as written." in await shown.nth(1).get_attribute("title")
    await page.click("#improve")
    await page.locator("#warnings").wait_for(state="visible")
    assert await page.inner_text("#improved") == text  # nothing was made worse
    items = page.locator("#warnings li")
    assert await items.count() == 1  # the kept constructive sentence needs no word
    item = await items.first.inner_text()
    assert CRITICAL in item and warning in item
