"""The three Triton models answer as the HTTP server does: streamed text joined equals Hugging Face
greedy, probabilities equal HF softmax, embeddings equal sentence-transformers'; bad parameters
are refused with the message /generate_stream gives, naming the field; ready means answering."""
from __future__ import annotations

import json
import queue
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from tests.triton.conftest import is_ready, skip_where_pytriton_cannot_run, wait_until

skip_where_pytriton_cannot_run()
import tritonclient.grpc as grpcclient  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from scheduler.request import Task  # noqa: E402
from takeoff.api.schemas import parse  # noqa: E402
from takeoff.api.takeoff_schemas import GenerateStreamBody  # noqa: E402
from takeoff.errors import ApiError, validation_error  # noqa: E402
from tests.server.test_api_takeoff import PROMPTS, hf_greedy  # noqa: E402,F401 (a fixture)

pytestmark = pytest.mark.triton
TEXTS = ["The demo went well.", "You never listen to anyone in these meetings."]


@pytest.fixture(scope="module")
def triton(deploy):
    """The deployment, and what each model answered the moment /v2/health/ready first said 200
    (watched from another thread while this one starts it)."""
    first_answers: dict = {}
    watchers: list[threading.Thread] = []

    def watch(deployment) -> None:
        if wait_until(lambda: is_ready(deployment.http_url), timeout_s=300, interval_s=0.01):
            first_answers.update(ask_every_model(deployment))

    def while_starting(deployment) -> None:
        watchers.append(threading.Thread(target=watch, args=(deployment,), daemon=True))
        watchers[0].start()

    deployment = deploy(while_starting=while_starting)
    watchers[0].join(timeout=120)
    deployment.first_answers = first_answers
    return deployment


def ask_every_model(deployment) -> dict:
    answers = {}
    try:
        pieces = stream(deployment.grpc_url, [("ready?", {"max_new_tokens": 4})])[0]
        answers["primary"] = "".join(pieces)
        client = httpclient.InferenceServerClient(deployment.http_url.removeprefix("http://"))
        answers["classifier"] = client.infer("classifier", [http_text(TEXTS[:1])]).as_numpy(
            "probabilities")
        answers["embed"] = client.infer("embed", [http_text(TEXTS[:1])]).as_numpy("embedding")
    except InferenceServerException as exc:
        answers["error"] = str(exc)
    return answers


def stream(grpc_url: str, requests: list[tuple[str, dict]]) -> list[list[str]]:
    """Send every (text, parameters) on one gRPC stream at once; each one's text pieces, in
    order. A request that fails raises InferenceServerException."""
    client = grpcclient.InferenceServerClient(grpc_url)
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    pieces: dict[str, list[str]] = {str(i): [] for i in range(len(requests))}
    try:
        for i, (text, parameters) in enumerate(requests):
            tensor = grpcclient.InferInput("text", [1], "BYTES")
            tensor.set_data_from_numpy(np.array([text.encode()], dtype=np.object_))
            client.async_stream_infer("primary", [tensor], request_id=str(i),
                                      parameters=parameters, enable_empty_final_response=True)
        finished: set[str] = set()
        while len(finished) < len(requests):
            result, error = answers.get(timeout=60)
            if error is not None:
                raise error
            response = result.get_response()
            text = result.as_numpy("text")
            if text is not None:
                pieces[response.id].append(text[0].decode())
            if response.parameters["triton_final_response"].bool_param:
                finished.add(response.id)
    finally:
        client.stop_stream()
        client.close()
    return [pieces[str(i)] for i in range(len(requests))]


def http_text(texts: list[str]) -> "httpclient.InferInput":
    tensor = httpclient.InferInput("text", [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
    return tensor


def grpc_text(texts: list[str]) -> "grpcclient.InferInput":
    tensor = grpcclient.InferInput("text", [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
    return tensor


@pytest.fixture(scope="module")
def hf_classifier(tiny_classifier_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_classifier_dir)
    with torch.inference_mode():
        logits = model(**tokenizer(TEXTS, return_tensors="pt", padding=True)).logits
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return logits.softmax(-1).numpy(), labels


def test_ready_means_every_model_answers(triton):
    answers = triton.first_answers
    assert "error" not in answers, answers.get("error")
    assert set(answers) == {"primary", "classifier", "embed"}
    assert answers["classifier"].shape == (1, 9) and answers["embed"].shape == (1, 32)


def test_streamed_pieces_join_to_hf_greedy(triton, hf_greedy):
    requests = [(prompt, {"max_new_tokens": 24}) for prompt in PROMPTS]
    answers = stream(triton.grpc_url, requests)  # concurrent, on one gRPC stream
    for prompt, pieces in zip(PROMPTS, answers):
        assert "".join(pieces) == hf_greedy(prompt, 24)
    assert max(map(len, answers)) > 1  # one response per piece, not one at the end


def test_http_generate_stream_joins_to_hf_greedy(triton, hf_greedy):
    body = {"text": PROMPTS[0], "max_new_tokens": 24, "min_new_tokens": 2}
    events = sse_events(triton.http_url + "/v2/models/primary/generate_stream", body)
    assert "".join(event["text"] for event in events) == hf_greedy(PROMPTS[0], 24)


def test_probabilities_equal_hf_softmax_over_http_and_grpc(triton, hf_classifier):
    expected, labels = hf_classifier
    http = httpclient.InferenceServerClient(triton.http_url.removeprefix("http://"))
    grpc = grpcclient.InferenceServerClient(triton.grpc_url)
    for result in (http.infer("classifier", [http_text(TEXTS)]),
                   grpc.infer("classifier", [grpc_text(TEXTS)])):
        assert np.allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
        names = [row[0].decode() for row in result.as_numpy("label")]
        assert names == [labels[i] for i in expected.argmax(axis=1)]


def test_embeddings_equal_sentence_transformers_over_http_and_grpc(triton, tiny_embedder_dir):
    from sentence_transformers import SentenceTransformer

    expected = SentenceTransformer(str(tiny_embedder_dir), device="cpu").encode(TEXTS)
    http = httpclient.InferenceServerClient(triton.http_url.removeprefix("http://"))
    grpc = grpcclient.InferenceServerClient(triton.grpc_url)
    for result in (http.infer("embed", [http_text(TEXTS)]),
                   grpc.infer("embed", [grpc_text(TEXTS)])):
        assert np.allclose(result.as_numpy("embedding"), expected, atol=1e-4)


# Each is refused by /generate_stream too; Triton's answer carries the very same message.
SHARED_MISTAKES = [{"max_new_tokens": 0}, {"max_new_tokens": 100000}, {"sampling_topp": 1.5},
                   {"sampling_temperature": -1.0}, {"min_new_tokens": 9, "max_new_tokens": 4},
                   {"max_new_tokens": "many"}, {"regex_string": ""}]


@pytest.mark.parametrize("parameters", SHARED_MISTAKES)
def test_bad_parameters_get_the_http_servers_message(triton, parameters):
    with pytest.raises(InferenceServerException) as refused:
        stream(triton.grpc_url, [(PROMPTS[0], parameters)])
    assert http_message(triton, parameters) in str(refused.value)
    assert "Traceback" not in str(refused.value)


@pytest.mark.parametrize("parameters, named", [({"temperature": 0.5}, "'temperature' is not a "
                                                "parameter of this model; it takes max_new_tokens"),
                                               ({"consumer_group": "primary"}, "'consumer_group'"),
                                               ({"text": "again"}, "'text' is the model's input")])
def test_unknown_parameters_are_refused_by_name(triton, parameters, named):
    with pytest.raises(InferenceServerException) as refused:
        stream(triton.grpc_url, [(PROMPTS[0], parameters)])
    assert named in str(refused.value)


def test_refusals_reach_http_clients_and_leave_the_server_serving(triton, hf_greedy):
    body = {"text": PROMPTS[1], "sampling_topk": -2}
    events = sse_events(triton.http_url + "/v2/models/primary/generate_stream", body)
    assert "sampling_topk: Input should be greater than or equal to 0" in events[-1]["error"]
    http = httpclient.InferenceServerClient(triton.http_url.removeprefix("http://"))
    with pytest.raises(InferenceServerException, match="'text' must not be empty"):
        http.infer("classifier", [http_text(["   "])])
    with pytest.raises(InferenceServerException, match="'top_k' is not a parameter: this model"):
        http.infer("embed", [http_text(TEXTS)], parameters={"top_k": 3})
    assert "".join(stream(triton.grpc_url, [(PROMPTS[1], {"max_new_tokens": 8})])[0]) == \
        hf_greedy(PROMPTS[1], 8)


def http_message(triton, parameters: dict) -> str:
    """What /generate_stream answers for these fields: its body's check, then the sampling
    resolved for the reader the engine picks (the default and the cap in layers)."""
    from pydantic import ValidationError

    reader = triton.link.engine.reader_set.pick("primary", Task.GENERATE)
    try:
        reader.sampling(parse(GenerateStreamBody, {"text": "x", **parameters}).sampling())
    except ValidationError as exc:
        return validation_error(exc).message
    except ApiError as exc:
        return exc.message
    raise AssertionError(f"{parameters} are valid")


def sse_events(url: str, body: dict) -> list[dict]:
    """Every `data:` of Triton's SSE answer, parsed."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
    return [json.loads(line.removeprefix("data: ")) for line in text.splitlines()
            if line.startswith("data: ")]
