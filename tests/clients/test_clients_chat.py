"""`takeoff chat` driven in a pseudo-terminal against a real server, as a person would use it."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

import aiohttp
import pytest

from clients.client import Client
from takeoff.feedback.task import rewrite_prompt
from tests.clients.slow_runner import metric, slow_runner
from tests.clients.terminal import Terminal

CANDIDATES = ["Your report was late again.", "Café meetings", "hello",
              "The onboarding guide is confusing."]


def letters(text: str) -> str:
    """The letters and digits of a text: what survives any terminal's rendering of it."""
    return "".join(c for c in text if c.isalnum())


@pytest.fixture
def chat():
    terminals = []

    def start(url: str, *args: str, env: dict | None = None) -> Terminal:
        terminal = Terminal("chat", "--url", url, *args, env={**os.environ, **(env or {})})
        terminals.append(terminal)
        return terminal

    yield start
    for terminal in terminals:
        terminal.close()


@pytest.fixture(scope="module")
def long_prompt(server_url) -> str:
    """A prompt whose greedy answer runs long on the tiny model (it has no say in when to stop)."""
    with Client(server_url) as client:
        lengths = {p: client.generate(p, max_new_tokens=200, return_metadata=True)
                   ["metadata"]["generated_tokens"] for p in CANDIDATES}
    prompt = max(lengths, key=lengths.get)
    assert lengths[prompt] >= 50, f"no candidate prompt gives a long answer: {lengths}"
    return prompt


def test_a_message_streams_its_answer(chat, server_url, long_prompt):
    with Client(server_url) as client:
        expected = client.generate(long_prompt, max_new_tokens=40, return_metadata=True)
    terminal = chat(server_url, "--max-new-tokens", "40")
    assert "groups: primary, classifier" in terminal.wait_for_prompt()
    terminal.type(long_prompt)
    shown = terminal.wait_for(" s]")
    answer, _, status = shown.rpartition("[")
    assert letters(expected["text"]) in letters(answer)
    meta = expected["metadata"]
    assert status.startswith(f"{meta['generated_tokens']} tokens, {meta['finish_reason']}")
    terminal.wait_for_prompt()
    terminal.ctrl("d")
    assert terminal.exit_status() == 0


def test_help_and_settings(chat, server_url, long_prompt):
    terminal = chat(server_url)
    terminal.wait_for_prompt()
    terminal.type("/help")
    help_text = terminal.wait_for_prompt()
    for command in ("/context", "/analyze", "/temperature", "/max-tokens", "/group", "/quit"):
        assert command in help_text
    terminal.type("/temperature hot")
    assert "usage: /temperature" in terminal.wait_for_prompt()
    terminal.type("/max-tokens 3")
    terminal.wait_for("at most 3 tokens")
    terminal.type(long_prompt)
    assert "[3 tokens, length" in terminal.wait_for(" s]")
    terminal.wait_for_prompt()
    terminal.type("/group classifier")
    terminal.wait_for_prompt()
    terminal.type(long_prompt)
    assert "serves classify requests" in terminal.wait_for_prompt()  # the server's own words
    terminal.type("/nonsense")
    assert "unknown command /nonsense" in terminal.wait_for_prompt()
    terminal.type("/max-tokens 7")
    terminal.wait_for("at most 7 tokens")
    terminal.wait_for_prompt()
    terminal.child.send("/group half-typed")
    terminal.child.sendintr()  # at the prompt Ctrl-C clears the line, the program goes on
    terminal.type("/settings")
    shown = terminal.wait_for("context (none)")
    assert "max tokens 7" in shown and "group classifier" in shown
    terminal.wait_for_prompt()
    terminal.child.send("\x1b[A\x1b[A\r")  # arrow up twice: the line before /settings again
    assert "at most 7 tokens" in terminal.wait_for_prompt()
    terminal.type("/quit")
    assert terminal.exit_status() == 0


def test_context_makes_the_rewriter_prompt(chat, server_url):
    context, feedback = "A manager reviews a sprint demo", "Why is this still broken?"
    with Client(server_url) as client:
        expected = client.generate(rewrite_prompt(context, feedback), max_new_tokens=30)["text"]
    terminal = chat(server_url, "--max-new-tokens", "30")
    terminal.wait_for_prompt()
    terminal.type(f"/context {context}")
    assert f"context set: {context}" in terminal.wait_for_prompt()
    terminal.type(feedback)
    assert letters(expected) in letters(terminal.wait_for(" s]"))


def test_ctrl_c_stops_the_answer_and_frees_the_slot(chat, server_factory, long_prompt):
    url = server_factory(runner_factory=slow_runner)
    terminal = chat(url, "--max-new-tokens", "200")
    terminal.wait_for_prompt()
    aborted = asyncio.run(_metric(url, "takeoff_finished_requests_total", 'reason="aborted"'))
    terminal.type(long_prompt)
    terminal.wait_for(long_prompt + "\n")  # the line as typed, then the answer
    # Pieces show as they are generated: part of the answer is on screen mid-generation.
    _wait_until(lambda: len(letters(terminal.new_text())) >= 5)
    assert asyncio.run(_metric(url, "takeoff_kv_slots_in_use")) == 1
    terminal.child.sendintr()
    terminal.wait_for("stopped")
    terminal.wait_for_prompt()
    _wait_until(lambda: asyncio.run(_metric(url, "takeoff_kv_slots_in_use")) == 0)
    assert asyncio.run(_metric(url, "takeoff_finished_requests_total",
                               'reason="aborted"')) == aborted + 1
    terminal.type("/max-tokens 2")  # the program is still there, and still answers
    terminal.wait_for_prompt()
    terminal.type(long_prompt)
    assert "[2 tokens, length" in terminal.wait_for(" s]")
    terminal.wait_for_prompt()
    terminal.ctrl("d")
    assert terminal.exit_status() == 0


def test_analyze_colours_each_sentence(chat, server_url):
    terminal = chat(server_url)
    terminal.wait_for_prompt()
    terminal.type("/analyze You never listen. Thanks for the clear demo!")
    shown = terminal.wait_for("overall: ")
    assert "You never listen." in shown and "Thanks for the clear demo!" in shown
    kinds = [line.split()[0] for line in shown.splitlines()
             if line.strip().startswith(("critical", "constructive"))]
    assert len(kinds) == 2
    colours = {"critical": "\x1b[1;31m", "constructive": "\x1b[1;32m"}
    for kind in set(kinds):
        assert colours[kind] in terminal.raw


def test_server_down_is_a_clear_message(chat):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    terminal = chat(url)
    assert f"cannot reach the takeoff server at {url}" in terminal.wait_for_prompt()
    terminal.type("hello")
    assert "is it running?" in terminal.wait_for_prompt()
    terminal.type("/quit")
    assert terminal.exit_status() == 0


def test_unauthorised_then_authorised(chat, server_factory):
    url = server_factory(api_key="s3cret")
    terminal = chat(url)
    assert "--api-key" in terminal.wait_for_prompt()
    terminal.type("/quit")
    assert terminal.exit_status() == 0
    terminal = chat(url, "--max-new-tokens", "3", env={"TAKEOFF_API_KEY": "s3cret"})
    assert "groups: primary, classifier" in terminal.wait_for_prompt()
    terminal.type("hello")
    assert " tokens, " in terminal.wait_for(" s]")


def test_overloaded_server_is_a_clear_message(chat, server_factory, long_prompt):
    url = server_factory(max_num_seqs=1, max_queue=1, runner_factory=slow_runner)
    running, waiting, refused = (chat(url, "--max-new-tokens", "200") for _ in range(3))
    for terminal in (running, waiting, refused):
        terminal.wait_for_prompt()
    running.type(long_prompt)
    _wait_until(lambda: asyncio.run(_metric(url, "takeoff_kv_slots_in_use")) == 1)
    waiting.type(long_prompt)
    _wait_until(lambda: asyncio.run(_metric(url, "takeoff_queue_length")) == 1)
    refused.type(long_prompt)
    assert "the server is overloaded" in refused.wait_for_prompt()
    for terminal in (running, waiting):
        terminal.child.sendintr()
        terminal.wait_for("stopped")


def test_scripted_without_a_terminal(server_url, long_prompt):
    with Client(server_url) as client:
        expected = client.generate(long_prompt, max_new_tokens=12)["text"]
    done = subprocess.run([sys.executable, "-m", "takeoff.cli", "chat", "--url", server_url,
                           "--max-new-tokens", "12"], input=f"{long_prompt}\n/quit\n",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected + "\n"  # only the answer, no colour codes, for a pipe
    assert "groups: primary, classifier" in done.stderr and " tokens, " in done.stderr


def test_scripted_with_the_server_down_exits_1():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    done = subprocess.run([sys.executable, "-m", "takeoff.cli", "chat", "--url", url],
                          input="hello\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"cannot reach the takeoff server at {url}" in done.stderr


async def _metric(url: str, name: str, labels: str = "") -> float:
    async with aiohttp.ClientSession() as session:
        return await metric(session, url, name, labels)


def _wait_until(condition, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)
