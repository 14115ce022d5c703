"""The feedback coach's endpoints over real HTTP: analyze, improve (JSON and SSE), the page."""
from __future__ import annotations

import asyncio
import json
import time
from contextlib import contextmanager

import aiohttp
import pytest

from transformers import AutoTokenizer

from clients.sse import SSEDecoder
from scheduler.request import Task
from takeoff.engine.stream import GenerationResult, RequestStream
from takeoff.engine.submission import Submission
from takeoff.feedback.choose import choose_rewrite, judge
from takeoff.feedback.coach import DEFAULT_CONTEXT, REWRITE_SAMPLING
from takeoff.feedback.sentences import split_sentences
from takeoff.feedback.task import LABELS, kind_of, rewrite_prompt, verdict
from tests.feedback_models import LEARNED
from tests.server.helpers import assert_api_error, next_event, read_events
from tests.runners import failing_runner, generator_runner

CONSTRUCTIVE = [s for s, label in LEARNED.items() if kind_of(label) == "constructive"]
CRITICAL = [s for s, label in LEARNED.items() if kind_of(label) == "critical"]
# constructive, critical, constructive, critical: both kinds, on two lines
MIXED = f"{CONSTRUCTIVE[0]} {CRITICAL[0]}\n- {CONSTRUCTIVE[1]}\n- {CRITICAL[1]}"
CONTEXT = "A team lead gives feedback to an engineer on a sprint"


@pytest.fixture(scope="module")
def coach_url(server_factory, learned_classifier):
    return server_factory(classifier=learned_classifier)


@contextmanager
def spy(engine, method: str):
    """Record (arguments, returned value) of each call to engine.<method> while the block runs
    (engine.submit returns its Submission at once: admitted or not, it is recorded)."""
    calls = []
    original = getattr(engine, method)

    def recording(*args, **kwargs):
        calls.append((args, None))
        calls[-1] = (args, original(*args, **kwargs))
        return calls[-1][1]

    setattr(engine, method, recording)
    try:
        yield calls
    finally:
        delattr(engine, method)


async def post(url: str, path: str, body, headers=None) -> tuple[int, dict, dict]:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    async with aiohttp.ClientSession() as session:
        async with session.post(url + path, data=data, headers=headers) as response:
            return response.status, dict(response.headers), await response.json()


async def test_analyze_labels_every_sentence_with_its_offsets(coach_url):
    status, _, answer = await post(coach_url, "/v1/feedback/analyze",
                                   {"text": MIXED, "context": CONTEXT})
    assert status == 200
    expected = split_sentences(MIXED)
    assert [s["text"] for s in answer["sentences"]] == [CONSTRUCTIVE[0], CRITICAL[0],
                                                        CONSTRUCTIVE[1], CRITICAL[1]]
    for sentence, split in zip(answer["sentences"], expected):
        assert (sentence["start"], sentence["end"]) == (split.start, split.end)
        assert MIXED[sentence["start"]:sentence["end"]] == sentence["text"]
        assert sentence["label"] == LEARNED[sentence["text"]]
        assert sentence["kind"] == kind_of(sentence["label"])
        assert 1 / len(LABELS) < sentence["score"] <= 1
    assert answer["kind"] == "critical"


async def test_analyze_scores_match_the_classifier(coach_url):
    text = " ".join(CONSTRUCTIVE)
    _, _, answer = await post(coach_url, "/v1/feedback/analyze", {"text": text})
    _, _, classified = await post(coach_url, "/classify", {"text": CONSTRUCTIVE})
    for sentence, row in zip(answer["sentences"], classified["result"]):
        assert sentence["score"] == pytest.approx(max(row), abs=1e-5)
        assert sentence["label"] == classified["labels"][row.index(max(row))]
    assert answer["kind"] == "constructive"


async def test_analyze_classifies_all_sentences_in_one_call(server_factory):
    server = server_factory.server(max_queue=63)
    with spy(server.engine, "submit") as calls:
        status, _, answer = await post(server.url, "/v1/feedback/analyze", {"text": MIXED})
    assert status == 200
    assert [args[:2] for args, _ in calls] == [
        (Task.CLASSIFY, [s["text"] for s in answer["sentences"]])]


@pytest.mark.parametrize("body, status, param", [
    ({}, 400, "text"),
    ({"text": ""}, 400, "text"),
    ({"text": " \n\t "}, 400, "text"),
    ({"text": "... !!"}, 400, "text"),
    ({"text": 42}, 400, "text"),
    ({"text": ["a list"]}, 400, "text"),
    ({"text": "Fine.", "context": 3}, 400, "context"),
    ({"text": "x" * 5001}, 413, "text"),
    ({"text": "Fine.", "context": "c" * 1001}, 413, "context"),
    ({"text": "Bad. " * 65}, 413, "text"),
])
@pytest.mark.parametrize("path", ["/v1/feedback/analyze", "/v1/feedback/improve"])
async def test_bad_requests_get_a_json_error(server_url, path, body, status, param):
    got, _, answer = await post(server_url, path, body)
    assert got == status
    assert answer["error"]["param"] == param
    assert answer["error"]["message"]


async def test_stream_must_be_a_boolean(server_url):
    status, _, answer = await post(server_url, "/v1/feedback/improve",
                                   {"text": "Fine.", "stream": "yes"})
    assert status == 400
    assert answer["error"]["param"] == "stream"


async def test_invalid_json_is_a_400(server_url):
    status, _, answer = await post(server_url, "/v1/feedback/analyze", b"{not json")
    assert status == 400
    assert "JSON" in answer["error"]["message"]


async def test_improve_rewrites_critical_sentences_and_keeps_the_others(coach_url):
    status, _, answer = await post(coach_url, "/v1/feedback/improve",
                                   {"text": MIXED, "context": CONTEXT})
    assert status == 200
    sentences = answer["sentences"]
    assert [s["kind"] for s in sentences] == ["constructive", "critical"] * 2
    expected_parts = []
    for sentence in sentences:
        if sentence["kind"] == "constructive":
            assert sentence["rewrite"] is None
            expected_parts.append(sentence["text"])
            continue
        # the same prompt through /generate, with the same beams, gives the candidates; the coach
        # shows the one `choose_rewrite` picks with the classifier's reading of them, or none and says why
        _, _, generated = await post(coach_url, "/generate", {
            "text": rewrite_prompt(CONTEXT, sentence["text"]),
            **{name: getattr(REWRITE_SAMPLING, name) for name in (
                "max_new_tokens", "no_repeat_ngram_size", "num_beams", "num_return_sequences", "length_penalty")}})
        assert len(generated["text"]) == REWRITE_SAMPLING.num_return_sequences
        # the classifier reads the candidates that pass the text checks, as the coach does
        texts = [c.text for c in judge(generated["text"], sentence["text"], CONTEXT) if c.passes]
        _, _, read = await post(coach_url, "/classify", {"text": texts}) if texts else (0, 0, {"result": []})
        critical = {t for t, row in zip(texts, read["result"]) if verdict(row, read.get("labels", LABELS)).kind == "critical"}
        chosen = choose_rewrite(generated["text"], sentence["text"], CONTEXT, critical=critical)
        assert (sentence["rewrite"], sentence["rewrite_warning"]) == chosen
        expected_parts.append(sentence["rewrite"] or sentence["text"])
    a, b, c, d = expected_parts
    assert answer["text"] == f"{a} {b}\n- {c}\n- {d}"


async def test_improve_leaves_constructive_feedback_as_it_is(coach_url):
    text = f"  {CONSTRUCTIVE[0]}\r\n\r\n{CONSTRUCTIVE[1]}  "
    status, _, answer = await post(coach_url, "/v1/feedback/improve", {"text": text})
    assert status == 200
    assert answer["kind"] == "constructive"
    assert answer["text"] == f"{CONSTRUCTIVE[0]}\n\n{CONSTRUCTIVE[1]}"


async def test_improve_streams_pieces_in_order_then_the_result(coach_url):
    body = {"text": MIXED, "context": CONTEXT, "stream": True}
    async with aiohttp.ClientSession() as session:
        async with session.post(coach_url + "/v1/feedback/improve", json=body) as response:
            assert response.status == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = await read_events(response)
    pieces = [event.data for event in events if event.event == "message"]
    assert [event.event for event in events][-1] == "result"
    assert len(pieces) == 7  # each sentence and separator as it is settled, not in one lump
    result = json.loads(events[-1].data)
    assert "".join(pieces) == result["text"]
    _, _, unstreamed = await post(coach_url, "/v1/feedback/improve",
                                  {"text": MIXED, "context": CONTEXT})
    assert result == unstreamed


async def wait_until_idle(engine, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if engine.snapshot.num_unfinished == 0 and engine.snapshot.num_slots_in_use == 0:
            return True
        await asyncio.sleep(0.05)
    return False


def rewrite_ids(calls) -> list[str]:
    """The request ids of the rewrites among engine.submit's recorded calls."""
    return [stream.request_id for args, work in calls if args[0] is Task.GENERATE
            for stream in work.streams]


async def test_a_client_that_leaves_cancels_the_rewrites(server_factory, learned_classifier):
    server = server_factory.server(classifier=learned_classifier, max_num_seqs=2)
    text = " ".join(CRITICAL * 3)  # nine rewrites, two slots: most are still to come
    with spy(server.engine, "abort") as aborted, spy(server.engine, "submit") as calls:
        async with aiohttp.ClientSession() as session:
            async with session.post(server.url + "/v1/feedback/improve",
                                    json={"text": text, "stream": True}) as response:
                assert response.status == 200
                await response.content.readline()  # the first piece has been generated
        assert await wait_until_idle(server.engine)
    rewrites = set(rewrite_ids(calls))
    assert len(rewrites) == 9
    assert len(rewrites & {request_id for (request_id,), _ in aborted}) >= 6
    assert server.engine.snapshot.num_slots_in_use == 0


async def test_one_refused_rewrite_refuses_them_all(server_factory, learned_classifier,
                                                    tiny_t5_dir):
    # The last critical sentence is the longest: an input limit between its prompt and the
    # others' would let two rewrites in and refuses the third with a 413. The rewrites are
    # admitted together or not at all: none runs.
    tokenizer = AutoTokenizer.from_pretrained(tiny_t5_dir)
    lengths = [len(tokenizer(rewrite_prompt(DEFAULT_CONTEXT, s)).input_ids) for s in CRITICAL]
    assert max(lengths[:2]) < lengths[2]
    limit = (max(lengths[:2]) + lengths[2]) // 2
    server = server_factory.server(classifier=learned_classifier, max_input_len=limit)
    with spy(server.engine, "submit") as calls:
        status, _, answer = await post(server.url, "/v1/feedback/improve",
                                       {"text": " ".join(CRITICAL)})
        assert await wait_until_idle(server.engine)
    assert status == 413
    assert answer["error"]["type"] == "request_too_large"
    assert [len(args[1]) for args, _ in calls if args[0] is Task.GENERATE] == [3]
    assert rewrite_ids(calls) == [] and server.engine.is_idle
    assert server.engine.snapshot.num_slots_in_use == 0


async def test_a_failed_step_mid_stream_is_an_error_event(server_factory, learned_classifier):
    # Room for one 4-beam search at a time: the others are still to come after the first piece.
    server = server_factory.server(classifier=learned_classifier, max_num_seqs=4,
                                   runner_factory=failing_runner)
    body = {"text": " ".join(CRITICAL), "stream": True}
    async with aiohttp.ClientSession() as session:
        async with session.post(server.url + "/v1/feedback/improve", json=body) as response:
            decoder, pending = SSEDecoder(), []
            assert (await next_event(response, decoder, pending)).event == "message"
            generator_runner(server.engine).broken.set()
            rest = pending + decoder.feed(await response.content.read()) + decoder.close()
            generator_runner(server.engine).broken.clear()
    assert rest[-1].event == "error"
    assert "simulated device failure" in json.loads(rest[-1].data)["error"]["message"]
    assert "result" not in [event.event for event in rest]
    assert await wait_until_idle(server.engine)
    assert server.engine.snapshot.num_slots_in_use == 0


async def test_the_page_and_its_static_files(server_url):
    async with aiohttp.ClientSession() as session:
        async with session.get(server_url + "/") as response:
            assert response.status == 200
            assert response.headers["content-type"].startswith("text/html")
            page = await response.text()
        for element_id in ("feedback", "context", "analyze", "improve", "result", "improved"):
            assert f'id="{element_id}"' in page
        assert all(label in page for label in LABELS)
        assert "{{" not in page
        async with session.get(server_url + "/static/app.js") as response:
            assert response.status == 200
            assert "javascript" in response.headers["content-type"]
            assert "/v1/feedback/improve" in await response.text()
        async with session.get(server_url + "/static/nothing.js") as response:
            assert response.status == 404


async def test_an_api_key_guards_the_feedback_endpoints(server_factory):
    url = server_factory(api_key="s3cret")
    status, _, _ = await post(url, "/v1/feedback/analyze", {"text": "Fine."})
    assert status == 401
    status, _, answer = await post(url, "/v1/feedback/analyze", {"text": "Fine."},
                                   headers={"Authorization": "Bearer s3cret"})
    assert status == 200
    assert len(answer["sentences"]) == 1


@contextmanager
def replaced(engine, method: str, fake):
    setattr(engine, method, fake)
    try:
        yield
    finally:
        delattr(engine, method)


def scripted(submit, answers: dict[str, list[str]], critical: set[str]):
    """The engine's submit, except that each rewrite's candidates are what `answers` has for its
    sentence, and the classifier reads a candidate as critical exactly when it is in `critical` (the
    tiny classifier's reading of a sentence it never learned is anyone's guess)."""
    candidates = {text for texts in answers.values() for text in texts}

    def rewrites(task, inputs, *args, **kwargs):
        if task is Task.CLASSIFY and set(inputs) <= candidates:
            work = submit(task, inputs, *args, **kwargs)

            async def readings():
                await results()
                return [[1.0 if label == ("Vague Criticism" if text in critical else "Helpful Suggestion") else 0.0
                         for label in work.labels] for text in inputs]

            results, work.results = work.results, readings
            return work
        if task is not Task.GENERATE:
            return submit(task, inputs, *args, **kwargs)

        async def admit(work: Submission) -> None:
            for index, prompt in enumerate(inputs):
                texts = next(texts for sentence, texts in answers.items() if prompt.endswith(sentence))
                stream = RequestStream(f"scripted-{index}", "scripted", 0, lambda request_id: None)
                sequences = tuple(GenerationResult(text, 0, 1, "eos_token") for text in texts)
                stream.put(GenerationResult(texts[0], 0, 1, "eos_token", 0.0, sequences))
                work.streams.append(stream)

        return Submission(admit)
    return rewrites


async def test_the_coach_shows_the_first_candidate_that_passes_or_none(server_factory, learned_classifier):
    server = server_factory.server(classifier=learned_classifier)
    faithful = "Could we look at what is broken together?"
    # CRITICAL[0]: the first candidate reads as critical to the classifier, the second passes.
    # CRITICAL[1]: one invents a missed deadline, a day and a person; the other repeats itself.
    still_critical = "Could we look at why this is still broken, for once?"
    answers = {CRITICAL[0]: [still_critical, faithful],
               CRITICAL[1]: ["I know listening is hard, but the deadline was missed on Friday. Could you ask Priya?",
                             "Could we talk about the talk about the talk about the meeting?"]}
    body = {"text": MIXED, "context": CONTEXT}
    with replaced(server.engine, "submit", scripted(server.engine.submit, answers, {still_critical})):
        status, _, answer = await post(server.url, "/v1/feedback/improve", body)
        async with aiohttp.ClientSession() as session:
            async with session.post(server.url + "/v1/feedback/improve",
                                    json=dict(body, stream=True)) as response:
                streamed = json.loads((await read_events(response))[-1].data)
    assert status == 200 and streamed == answer
    sentences = {s["text"]: s for s in answer["sentences"]}
    assert sentences[CRITICAL[0]]["rewrite"] == faithful
    assert sentences[CRITICAL[0]]["rewrite_warning"] is None
    assert sentences[CRITICAL[1]]["rewrite"] is None  # no bad rewrite is shown ...
    warning = sentences[CRITICAL[1]]["rewrite_warning"]
    assert "adds details your feedback does not give or does not read well" in warning, warning
    assert "kept as you wrote it" in warning
    assert answer["text"] == f"{CONSTRUCTIVE[0]} {faithful}\n- {CONSTRUCTIVE[1]}\n- {CRITICAL[1]}"  # ... it is kept
    for text in CONSTRUCTIVE[:2]:
        assert sentences[text]["rewrite"] is None and sentences[text]["rewrite_warning"] is None


@pytest.mark.parametrize("leaning, rewritten", [
    (("Balanced Criticism", "Vague Criticism"), False),  # likelier constructive: kept as written
    (("Vague Criticism", "Balanced Criticism"), True),   # likelier critical: rewritten
])
async def test_an_unsure_sentence_is_rewritten_only_when_it_leans_critical(server_factory, learned_classifier,
                                                                           leaning, rewritten):
    server = server_factory.server(classifier=learned_classifier)
    submit = server.engine.submit
    more, less = leaning
    generated = []  # the inputs of each rewrite submission

    def leaned(task, inputs, *args, **kwargs):
        """The engine's submit; the analyzed text's last sentence leans 0.55 on `more`, 0.45 on `less`."""
        work = submit(task, inputs, *args, **kwargs)
        if task is Task.GENERATE:
            generated.append(list(inputs))
        if task is Task.CLASSIFY and inputs[-1] == CONSTRUCTIVE[1]:
            results = work.results

            async def leaning_results():
                rows = await results()
                rows[-1] = [0.55 if label == more else 0.45 if label == less else 0.0 for label in work.labels]
                return rows

            work.results = leaning_results
        return work

    text = f"{CONSTRUCTIVE[0]} {CONSTRUCTIVE[1]}"
    with replaced(server.engine, "submit", leaned):
        _, _, analysis = await post(server.url, "/v1/feedback/analyze", {"text": text})
        _, _, improved = await post(server.url, "/v1/feedback/improve", {"text": text})
    first, last = analysis["sentences"]
    assert (first["kind"], first["unsure"]) == ("constructive", False)
    assert (last["label"], last["kind"], last["unsure"]) == (more, kind_of(more), True)
    assert improved["sentences"][0]["rewrite"] is None
    prompts = [prompt for inputs in generated for prompt in inputs]
    assert prompts == ([rewrite_prompt(DEFAULT_CONTEXT, CONSTRUCTIVE[1])] if rewritten else [])
    if not rewritten:
        assert improved["text"] == text and improved["sentences"][1]["rewrite"] is None


@pytest.mark.parametrize("overrides, served", [
    ({}, True),  # a generator, and a classifier with the coach's nine labels
    ({"model": None}, False),  # no generator to rewrite with
    ({"classifier": None, "generator_group": "rewriter"}, False),  # no classifier
    ({"model": None, "feedback_app": "on"}, True),
    ({"feedback_app": "off"}, False),
])
async def test_the_coach_is_served_where_it_can_work_or_when_asked(server_factory, overrides,
                                                                  served):
    url = server_factory(**overrides)
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/") as page:
            assert page.status == (200 if served else 404)
        async with session.post(url + "/v1/feedback/analyze", json={"text": "Hi."}) as answer:
            if served:
                assert answer.status == 200
            else:
                assert_api_error(answer.status, await answer.json(), 404)
