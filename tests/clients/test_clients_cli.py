"""`takeoff generate` and `takeoff classify`, run as a script would run them."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from clients.client import Client

PROMPT = "Your report was late again."


def takeoff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "takeoff.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def expected(server_url) -> dict:
    with Client(server_url) as client:
        return client.generate(PROMPT, max_new_tokens=16, return_metadata=True)


def test_generate_prints_the_text(server_url, expected):
    done = takeoff("generate", PROMPT, "--url", server_url, "--max-new-tokens", "16")
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected["text"] + "\n"


def test_generate_json_has_text_and_metadata(server_url, expected):
    done = takeoff("generate", PROMPT, "--url", server_url, "--max-new-tokens", "16", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected


def test_generate_reads_stdin(server_url, expected):
    done = takeoff("generate", "-", "--url", server_url, "--max-new-tokens", "16", stdin=PROMPT)
    assert done.stdout == expected["text"] + "\n"


def test_generate_stream(server_url, expected):
    plain = takeoff("generate", PROMPT, "--url", server_url, "--max-new-tokens", "16",
                    "--stream")
    assert plain.stdout == expected["text"] + "\n"
    lines = takeoff("generate", PROMPT, "--url", server_url, "--max-new-tokens", "16",
                    "--stream", "--json").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) > 2
    assert "".join(e["text"] for e in events[:-1]) == expected["text"]
    assert events[-1] == {"metadata": expected["metadata"]}


def test_generation_flags_reach_the_server(server_url):
    def sampled(seed: str) -> str:
        return takeoff("generate", PROMPT, "--url", server_url, "--max-new-tokens", "12",
                       "--temperature", "1.0", "--seed", seed, "--json").stdout

    assert json.loads(sampled("5")) == json.loads(sampled("5"))
    short = json.loads(takeoff("generate", PROMPT, "--url", server_url, "--max-new-tokens", "2",
                               "--json").stdout)
    assert short["metadata"]["generated_tokens"] <= 2


def test_classify(server_url):
    texts = ["You never listen.", "Thanks for the clear demo!"]
    with Client(server_url) as client:
        expected = client.classify(texts)
    as_json = takeoff("classify", *texts, "--url", server_url, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == expected
    rows = [line.split("\t") for line in takeoff("classify", *texts, "--url",
                                                 server_url).stdout.splitlines()]
    labels = expected["labels"]
    for (label, probability, text), row, given in zip(rows, expected["result"], texts):
        assert text == given
        assert label == labels[row.index(max(row))]
        assert float(probability) == pytest.approx(max(row), abs=1e-3)


def test_classify_reads_lines_from_stdin(server_url):
    done = takeoff("classify", "-", "--url", server_url, "--json",
                   stdin="You never listen.\n\nThanks for the clear demo!\n")
    assert len(json.loads(done.stdout)["result"]) == 2


def test_server_down_is_one_line_and_exit_1():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    done = takeoff("generate", PROMPT, "--url", url)
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert f"cannot reach the takeoff server at {url}" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["generate", PROMPT, "--max-new-tokens", "0"], "max_new_tokens"),
    (["generate", PROMPT, "--group", "nope"], "'nope' does not exist"),
    (["classify", "hi", "--group", "primary"], "serves generate requests"),
])
def test_refused_requests_give_the_server_reason(server_url, args, message):
    done = takeoff(*args, "--url", server_url)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr


def test_api_key_from_flag_or_environment(server_factory):
    url = server_factory(api_key="s3cret")
    refused = takeoff("generate", PROMPT, "--url", url)
    assert refused.returncode == 1 and "--api-key" in refused.stderr
    assert takeoff("generate", PROMPT, "--url", url, "--api-key", "s3cret",
                   "--max-new-tokens", "2").returncode == 0
    done = subprocess.run([sys.executable, "-m", "takeoff.cli", "classify", "hi"],
                          env={**os.environ, "TAKEOFF_URL": url,
                               "TAKEOFF_API_KEY": "s3cret"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
