"""Drive a command in a pseudo-terminal and read its screen as text, as a person would see it."""
from __future__ import annotations

import os
import re
import sys
import time

import pexpect

# Escape sequences (colours, cursor moves, modes) and the control characters left after them.
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\x1b[=>78]"
                  r"|[\x00-\x08\x0b-\x1f\x7f]")


class Terminal:
    """`wait_for` reads until the text since the last match contains what is expected."""

    def __init__(self, *args: str, env: dict | None = None, timeout: float = 30):
        # This terminal does not answer cursor-position requests: tell prompt_toolkit not to
        # ask (and wait) before each prompt.
        env = {**(env or os.environ), "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm-256color"}
        self.child = pexpect.spawn(sys.executable, ["-m", "takeoff.cli", *args], env=env,
                                   encoding="utf-8", codec_errors="replace",
                                   dimensions=(50, 200))
        self.timeout = timeout
        self.raw = ""
        self.seen = 0  # screen text up to here has been matched already

    @property
    def screen(self) -> str:
        return ANSI.sub("", self.raw)

    def wait_for(self, expected: str) -> str:
        """The text from the last match up to and including `expected`."""
        deadline = time.monotonic() + self.timeout
        while True:
            text = self.screen[self.seen:]
            if expected in text:
                end = text.index(expected) + len(expected)
                self.seen += end
                return text[:end]
            if time.monotonic() > deadline:
                raise AssertionError(f"{expected!r} never showed; the screen ends with "
                                     f"{self.screen[-800:]!r}")
            self._read()

    def wait_for_prompt(self) -> str:
        """Everything up to the next input prompt ("> " drawn by prompt_toolkit)."""
        deadline = time.monotonic() + self.timeout
        while True:
            text = self.screen[self.seen:]
            if text.rstrip(" ").endswith(">"):
                self.seen += len(text)
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"no prompt; the screen ends with {self.screen[-800:]!r}")
            self._read()

    def new_text(self) -> str:
        """What the screen shows after the last match, once whatever has arrived is read."""
        self._read()
        return self.screen[self.seen:]

    def type(self, line: str) -> None:
        self.child.sendline(line)

    def ctrl(self, key: str) -> None:
        self.child.sendcontrol(key)

    def exit_status(self) -> int:
        self.child.expect(pexpect.EOF, timeout=self.timeout)
        self.raw += self.child.before or ""
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)

    def _read(self) -> None:
        try:
            self.raw += self.child.read_nonblocking(4096, timeout=0.1)
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            raise AssertionError(f"the program ended; its screen: {self.screen[-800:]!r}")
