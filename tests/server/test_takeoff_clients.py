"""Takeoff's own clients against a real server, unchanged: the official `takeoff-client`
(sync and async, constructed as its docs show), LangChain's TitanTakeoff and TitanTakeoffEmbed
(which create readers), and the openai package's embeddings. Texts equal Hugging Face greedy;
vectors equal sentence-transformers'."""
from __future__ import annotations

import json
import re

import openai
import pytest
import torch
from langchain_community.embeddings import TitanTakeoffEmbed
from langchain_community.llms import TitanTakeoff
from takeoff_client import TakeoffClient, TakeoffException
from transformers import AutoTokenizer, T5ForConditionalGeneration

from takeoff.config import ServerConfig
from takeoff.feedback.task import rewrite_prompt
from tests.model.test_kernels_embedder import reference
from tests.server.conftest import TEST_DEFAULTS, ThreadServer, bound_socket
from tests.tiny_models import CORPUS, save_tiny_sentence_encoder, save_tiny_t5

OPENAI_PORT = 3003  # the official client's: TakeoffClient never asks where the OpenAI API is
PROMPT = CORPUS[0]
TEXTS = CORPUS[:4]


def consecutive_ports() -> list:
    """Bound sockets on two consecutive free ports (the client finds management at port + 1)."""
    for _ in range(50):
        first = bound_socket()
        port = first.getsockname()[1]
        try:
            return [first, bound_socket(port + 1)]
        except OSError:
            first.close()
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("client-models")
    return {"other_t5": save_tiny_t5(root / "other-t5", seed=7),
            "encoder": save_tiny_sentence_encoder(root / "encoder"),
            "encoder2": save_tiny_sentence_encoder(root / "encoder2", seed=3)}


@pytest.fixture(scope="module")
def server(tiny_t5_dir, tiny_classifier_dir, models):
    sockets = consecutive_ports()
    try:
        sockets.append(bound_socket(OPENAI_PORT))
    except OSError:
        pytest.fail(f"port {OPENAI_PORT} is taken; the official client expects the OpenAI API there")
    port = sockets[0].getsockname()[1]
    config = ServerConfig(**dict(TEST_DEFAULTS, port=port, management_port=port + 1,
                                 openai_port=OPENAI_PORT, model=str(tiny_t5_dir),
                                 classifier=str(tiny_classifier_dir),
                                 embedder=str(models["encoder"])))
    server = ThreadServer(config, sockets=sockets).start()
    server.port = port
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    return TakeoffClient("http://localhost", port=server.port)


def hf_greedy(model_dir, prompt: str, max_new_tokens: int) -> str:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = T5ForConditionalGeneration.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        out = model.generate(torch.tensor([tokenizer(prompt)["input_ids"]]), do_sample=False,
                             max_new_tokens=max_new_tokens)
    return tokenizer.decode(out[0], skip_special_tokens=True)


def reader_id_of(client, group: str) -> str:
    return client.get_readers()[group][0]["reader_id"]


def test_generate_and_stream_equal_hf_greedy(client, tiny_t5_dir):
    expected = hf_greedy(tiny_t5_dir, PROMPT, 20)
    assert client.generate(PROMPT, max_new_tokens=20)["text"] == expected
    assert client.generate([PROMPT, PROMPT], max_new_tokens=20)["text"] == [expected] * 2
    pieces = [event.data for event in client.generate_stream(PROMPT, max_new_tokens=20)
              if event.event in (None, "message")]
    assert "".join(pieces) == expected


async def test_the_async_calls_give_the_same(client, tiny_t5_dir):
    expected = hf_greedy(tiny_t5_dir, PROMPT, 12)
    assert (await client.generate_async(PROMPT, max_new_tokens=12))["text"] == expected
    pieces = [event.data async for event in client.generate_stream_async(PROMPT, max_new_tokens=12)
              if event.event in (None, "message")]
    assert "".join(pieces) == expected
    rows = (await client.classify_async(TEXTS))["result"]
    assert len(rows) == len(TEXTS)


def test_classify_with_the_clients_default_group(client):
    answer = client.classify(TEXTS)  # consumer_group "classify"
    assert len(answer["result"]) == len(TEXTS)
    assert all(abs(sum(row) - 1) < 1e-4 for row in answer["result"])


def test_tokenizer_calls_by_reader_id(client, tiny_t5_dir):
    reader_id = reader_id_of(client, "primary")
    tokenizer = AutoTokenizer.from_pretrained(tiny_t5_dir)
    ids = tokenizer(PROMPT)["input_ids"]
    assert client.tokenize(PROMPT, reader_id) == tokenizer.convert_ids_to_tokens(ids)
    assert client.tokens_count(PROMPT, reader_id) == len(ids)
    assert client.detokenize(ids, reader_id) == PROMPT
    assert client.detokenize(tokenizer.convert_ids_to_tokens(ids), reader_id) == PROMPT
    conversation = [{"role": "system", "content": "A lead reviews a demo"},
                    {"role": "user", "content": "It broke again."}]
    assert client.chat_template(conversation, reader_id) == [
        rewrite_prompt("A lead reviews a demo", "It broke again.")]
    with pytest.raises(TakeoffException) as caught:
        client.tokenize(PROMPT, "no-such-reader")
    assert caught.value.status_code == 404


def test_status_and_reader_groups_on_the_management_port(client):
    status = client.get_status()
    live = status["status"]["live_readers"]
    assert {reader["consumer_groups"][0] for reader in live.values()} >= {"primary", "classifier",
                                                                          "embed"}
    groups = client.get_readers()
    assert groups["primary"][0]["model_type"] == "SEQ2SEQ"
    reader_id = reader_id_of(client, "primary")
    assert client.get_reader_config(reader_id)["consumer_group"] == "primary"


def test_a_reader_created_at_run_time_serves_its_own_model_and_is_gone_after_delete(client,
                                                                                     models):
    other = models["other_t5"]
    created = client.create_reader({"model_name": str(other), "device": "cpu",
                                    "consumer_group": "extra"})
    expected = hf_greedy(other, PROMPT, 16)
    assert client.generate(PROMPT, max_new_tokens=16, consumer_group="extra")["text"] == expected
    assert client.get_reader_config(created["reader_id"])["model_name"] == str(other)
    with pytest.raises(TakeoffException) as duplicate:
        client.create_reader({"model_name": str(other), "device": "cpu",
                              "consumer_group": "extra"})
    assert duplicate.value.status_code == 409
    client.delete_reader(created["reader_id"])
    with pytest.raises(TakeoffException) as gone:
        client.generate(PROMPT, max_new_tokens=4, consumer_group="extra")
    assert gone.value.status_code == 404
    assert "extra" not in client.get_readers()


def test_a_reader_from_a_bad_directory_is_a_400(client, tmp_path):
    with pytest.raises(TakeoffException) as caught:
        client.create_reader({"model_name": str(tmp_path / "nothing"), "device": "cpu",
                              "consumer_group": "broken"})
    assert caught.value.status_code == 400 and "does not exist" in str(caught.value)


def test_embed_through_the_client_equals_sentence_transformers(client, models):
    result = client.embed(TEXTS, consumer_group="embed")["result"]
    assert torch.allclose(torch.tensor(result), reference(models["encoder"], TEXTS), atol=1e-4)


def test_constrained_generation_always_parses(client):
    regex = r"[0-9]{3}-[a-z]+"
    for seed in range(3):
        text = client.generate(PROMPT, regex_string=regex, max_new_tokens=24,
                               sampling_topk=0, sampling_temperature=1.0 + seed)["text"]
        assert re.fullmatch(regex, text), text
    schema = {"type": "object", "properties": {
        "label": {"enum": ["praise", "blame"]}, "score": {"type": "integer", "minimum": 0,
                                                          "maximum": 9}},
              "required": ["label", "score"], "additionalProperties": False}
    text = client.generate(PROMPT, json_schema=schema, max_new_tokens=40,
                           constrained_decoding_backend="llguidance")["text"]
    parsed = json.loads(text)
    assert parsed["label"] in ("praise", "blame") and 0 <= parsed["score"] <= 9
    with pytest.raises(TakeoffException) as caught:
        client.generate(PROMPT, regex_string="[unclosed")
    assert caught.value.status_code == 400


def test_openai_response_format_json_schema_parses(server):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    with openai.OpenAI(base_url=f"http://127.0.0.1:{OPENAI_PORT}/v1", api_key="unused") as oai:
        answer = oai.chat.completions.create(
            model="primary", messages=[{"role": "user", "content": PROMPT}], max_tokens=20,
            temperature=0, response_format={"type": "json_schema",
                                            "json_schema": {"name": "verdict", "schema": schema}})
    assert isinstance(json.loads(answer.choices[0].message.content)["ok"], bool)


def test_openai_embeddings_equal_sentence_transformers(server, models):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused") as oai:
        answer = oai.embeddings.create(model="embed", input=TEXTS)  # base64 on the wire
    vectors = torch.tensor([item.embedding for item in answer.data])
    assert torch.allclose(vectors, reference(models["encoder"], TEXTS), atol=1e-4)
    assert answer.usage.prompt_tokens > 0


def test_the_ports_serve_their_own_api(server):
    import httpx

    management = f"http://127.0.0.1:{server.port + 1}"
    assert httpx.get(management + "/status").status_code == 200
    assert httpx.post(management + "/generate", json={"text": PROMPT}).status_code == 404
    assert httpx.get(f"http://127.0.0.1:{OPENAI_PORT}/v1/models").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{OPENAI_PORT}/reader_groups").status_code == 404
    for path in ("/status", "/v1/models", "/reader_groups"):  # all of it on the main port
        assert httpx.get(server.url + path).status_code == 200


def test_langchain_creates_its_reader_and_generates(server, models):
    other = models["other_t5"]
    llm = TitanTakeoff(port=server.port, mgmt_port=server.port + 1,
                       models=[{"model_name": str(other), "device": "cpu",
                                "consumer_group": "langchain"}])
    expected = hf_greedy(other, PROMPT, 16)
    assert llm.invoke(PROMPT, consumer_group="langchain", max_new_tokens=16) == expected
    streamed = "".join(llm.stream(PROMPT, consumer_group="langchain", max_new_tokens=16))
    # LangChain joins the data of every SSE event (its SSE reader drops the pieces' leading
    # spaces): the text, then the contract's closing `event: metadata`.
    text = expected.replace(" ", "")
    assert streamed.replace(" ", "").startswith(text)
    assert json.loads(streamed.replace(" ", "")[len(text):])["finish_reason"] in ("eos_token", "length")


def test_langchain_embeddings_create_their_reader(server, models):
    embedder = TitanTakeoffEmbed(port=server.port, mgmt_port=server.port + 1,
                                 models=[{"model_name": str(models["encoder2"]), "device": "cpu",
                                          "consumer_group": "langchain-embed"}])
    expected = reference(models["encoder2"], TEXTS)
    assert torch.allclose(torch.tensor(embedder.embed_documents(TEXTS)), expected, atol=1e-4)
    assert torch.allclose(torch.tensor(embedder.embed_query(TEXTS[0])), expected[0], atol=1e-4)
