"""`takeoff chat`: an interactive session with a running server, each answer streamed live.

Ctrl-C during an answer cancels the task reading the stream; closing the connection makes the
server abort the request and free its slot. At the prompt, Ctrl-C clears the line and Ctrl-D
(or /quit) ends the session. With stdin not a terminal it reads plain lines, so it can be scripted.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from rich.console import Console
from rich.text import Text

from clients.client import TakeoffClient, sampling_fields
from clients.errors import NotFoundError, TakeoffError, describe_error

HELP = """\
Type a message to generate an answer. With a context set, the message and the context go to the
chat endpoint as user and system messages; for the feedback rewriter that makes the prompt
"Context: <context>. Make the following feedback constructive: <message>".
  /context <text>     set the context (/context alone clears it)
  /analyze <text>     label each sentence: critical (red) or constructive (green)
  /temperature <x>    0 is greedy; above 0 samples
  /max-tokens <n>     longest answer in tokens
  /group <name>       consumer group that generates
  /settings           show the current settings
  /help               this help
  /quit               leave (or Ctrl-D)
Ctrl-C stops the answer being written; at the prompt it clears the line."""


@dataclass
class ChatSettings:
    context: str = ""
    temperature: float = 0.0
    max_new_tokens: int = 128
    group: str | None = None


class ChatSession:
    def __init__(self, client: TakeoffClient, console: Console, settings: ChatSettings,
                 status: Console | None = None):
        self.client = client
        self.console = console  # answers and what the user asked to see
        self.status = status or console  # notes, warnings and each answer's status line
        self.settings = settings
        self.num_failed = 0  # requests the server refused or never answered
        self.commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "/context": self.set_context, "/analyze": self.analyze,
            "/temperature": self.set_temperature, "/max-tokens": self.set_max_tokens,
            "/group": self.set_group, "/settings": self.show_settings, "/help": self.show_help,
        }

    async def handle(self, line: str) -> bool:
        """Act on one input line; False when the session should end."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/"):
            await self.answer(line)
            return True
        name, _, argument = line.partition(" ")
        if name in ("/quit", "/exit"):
            return False
        command = self.commands.get(name)
        if command is None:
            self.warn(f"unknown command {name}; /help lists the commands")
        else:
            await command(argument.strip())
        return True

    async def answer(self, message: str) -> None:
        """Stream the answer to `message`; Ctrl-C cancels it and returns to the prompt."""
        task = asyncio.create_task(self._stream_answer(message))
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # the session itself is being cancelled
            self.status.print(Text("stopped", style="yellow"))
        except TakeoffError as error:
            self.fail(error)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    def _answer_stream(self, message: str):
        settings = self.settings
        if settings.context:  # the server's chat template builds the rewriter's prompt
            messages = [{"role": "system", "content": settings.context},
                        {"role": "user", "content": message}]
            return self.client.chat_stream(messages, model=settings.group,
                                           max_tokens=settings.max_new_tokens,
                                           temperature=settings.temperature)
        return self.client.generate_stream(message, max_new_tokens=settings.max_new_tokens,
                                           consumer_group=settings.group,
                                           **sampling_fields(settings.temperature))

    async def _stream_answer(self, message: str) -> None:
        started, shown = time.perf_counter(), False
        try:
            async with self._answer_stream(message) as stream:
                async for piece in stream:
                    self.console.print(piece, end="", markup=False)
                    shown = True
        except BaseException:
            if shown:  # end the cut-off answer's line before the message about it
                self.console.print()
            raise
        self.console.print()
        meta = stream.metadata or {}
        self.status.print(Text(f"[{meta.get('generated_tokens', '?')} tokens, "
                                f"{meta.get('finish_reason', '?')}, "
                                f"{time.perf_counter() - started:.1f} s]", style="dim"))

    async def analyze(self, text: str) -> None:
        if not text:
            return self.warn("usage: /analyze <feedback text>")
        try:
            answer = await self.client.analyze_feedback(text, self.settings.context)
        except NotFoundError:
            self.num_failed += 1
            return self.warn("this server has no feedback analyzer (POST /v1/feedback/analyze "
                             "answered 404): start it with a classifier")
        except TakeoffError as error:
            return self.fail(error)
        for sentence in answer.get("sentences", []):
            colour = "red" if sentence.get("kind") == "critical" else "green"
            line = Text(f"{sentence.get('kind', '?'):>12}  ", style=f"bold {colour}")
            line.append(f"{sentence.get('label')} ({sentence.get('score', 0):.2f})  ", style=colour)
            line.append(sentence.get("text", ""))
            self.console.print(line)
        overall = answer.get("kind", "?")
        self.console.print(Text(f"overall: {overall}",
                                style="bold red" if overall == "critical" else "bold green"))

    async def set_context(self, text: str) -> None:
        self.settings.context = text
        self.note(f"context set: {text}" if text else "context cleared: messages are sent as is")

    async def set_temperature(self, value: str) -> None:
        try:
            temperature = float(value)
        except ValueError:
            return self.warn("usage: /temperature <number, 0 for greedy>")
        if temperature < 0:
            return self.warn("the temperature must be 0 or more")
        self.settings.temperature = temperature
        self.note(f"temperature {temperature:g}" + (" (greedy)" if temperature == 0 else ""))

    async def set_max_tokens(self, value: str) -> None:
        if not value.isdigit() or int(value) < 1:
            return self.warn("usage: /max-tokens <whole number, at least 1>")
        self.settings.max_new_tokens = int(value)
        self.note(f"answers of at most {value} tokens")

    async def set_group(self, name: str) -> None:
        self.settings.group = name or None
        self.note(f"consumer group {name}" if name else "consumer group: the server's default")

    async def show_settings(self, _: str = "") -> None:
        s = self.settings
        self.note(f"url {self.client.url}, group {s.group or '(default)'}, temperature "
                  f"{s.temperature:g}, max tokens {s.max_new_tokens}, context "
                  f"{s.context or '(none)'}")

    async def show_help(self, _: str = "") -> None:
        self.console.print(HELP, markup=False, highlight=False)

    def note(self, message: str) -> None:
        self.status.print(Text(message, style="cyan"))

    def fail(self, error: TakeoffError) -> None:
        self.num_failed += 1
        self.warn(describe_error(error, self.client.url))

    def warn(self, message: str) -> None:
        self.status.print(Text(message, style="bold red"))


async def greet(session: ChatSession) -> None:
    """Say where we are connected and what the server offers, or why that failed."""
    try:
        groups = await session.client.reader_groups()
    except TakeoffError as error:
        return session.fail(error)
    session.note(f"connected to {session.client.url}; groups: {', '.join(groups)}. "
                 "/help for commands")


async def read_lines(interactive: bool, history_file: str | None):
    """Input lines, from prompt_toolkit (history, line editing) or from plain stdin."""
    if not interactive:
        while line := await asyncio.to_thread(sys.stdin.readline):
            yield line
        return
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    prompt = PromptSession(history=FileHistory(history_file) if history_file
                           else InMemoryHistory())
    while True:
        try:
            yield await prompt.prompt_async("> ")
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line
        except EOFError:
            return


def run_chat(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(chat(args))
    except KeyboardInterrupt:  # Ctrl-C between answers when stdin is not a terminal
        return 130


async def chat(args: argparse.Namespace) -> int:
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    console = Console(highlight=False, soft_wrap=True)
    # Scripted, only the answers go to stdout; the notes go to stderr.
    status = console if interactive else Console(stderr=True, highlight=False, soft_wrap=True)
    settings = ChatSettings(context=args.context, temperature=args.temperature,
                            max_new_tokens=args.max_new_tokens, group=args.group)
    async with TakeoffClient(args.url, args.api_key, timeout=args.timeout) as client:
        session = ChatSession(client, console, settings, status)
        await greet(session)
        async for line in read_lines(interactive, args.history):
            if not await session.handle(line):
                break
    # A script learns from the exit status that some request failed; a person saw it already.
    return 1 if session.num_failed and not interactive else 0
