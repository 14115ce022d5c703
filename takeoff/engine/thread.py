"""The engine thread: runs EngineCore.step() in a loop, fed through an inbox of commands.

The inbox is the only way into the core from other threads: `send(command)` queues a callable
that the engine thread runs at its next step boundary, or between two layers of a running step
(where waiting classifications cut in) unless the command asks to wait for a step boundary.
Each step's outputs go back to the event loop in one `call_soon_threadsafe`, and after each
step (and each round of commands) the thread replaces `snapshot`, the core's counts as other
threads may read them.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import threading
from typing import Callable

from takeoff.engine.core import CoreSnapshot, EngineCore, EngineOutput

logger = logging.getLogger(__name__)


class EngineThread:
    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self._inbox: collections.deque[tuple[Callable[[], object], bool]] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deliver: Callable[[list[EngineOutput]], None] | None = None
        # The core's counts for other threads, replaced (never changed) after every step.
        self.snapshot: CoreSnapshot = core.snapshot()

    def start(self, loop: asyncio.AbstractEventLoop,
              deliver: Callable[[list[EngineOutput]], None]) -> None:
        self._loop, self._deliver = loop, deliver
        self.core.poll = self._poll_mid_step
        self.core.publish = self._publish
        self._thread = threading.Thread(target=self._run, name="takeoff-engine", daemon=True)
        self._thread.start()

    @property
    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def send(self, command: Callable[[], object], *, mid_step: bool = True) -> None:
        """Run `command` on the engine thread; with mid_step=False, only between steps."""
        self._inbox.append((command, mid_step))
        self._wake.set()

    async def stop(self, timeout_s: float) -> None:
        """Let the running step finish, then end the thread; waits off the event loop."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout_s)
            if self._thread.is_alive():
                logger.warning("the engine thread is still in a step after %.0f s; leaving it",
                               timeout_s)

    def _run(self) -> None:
        while True:
            self._wake.clear()
            self._drain(mid_step=False)
            self.snapshot = self.core.snapshot()
            if self._stopping:
                return
            if not self.core.has_work:
                self._wake.wait()
                continue
            try:
                outputs = self.core.step()
            except Exception as exc:  # noqa: BLE001 - a bug: answer everyone rather than hang
                logger.exception("an engine step failed outside any one request")
                outputs = self.core.fail_all(f"the engine failed: {exc}")
            self.snapshot = self.core.snapshot()
            self._publish(outputs)

    def _poll_mid_step(self) -> None:
        self._drain(mid_step=True)

    def _drain(self, mid_step: bool) -> None:
        while self._inbox:
            command, anytime = self._inbox[0]
            if mid_step and not anytime:
                return  # keeps its place: later commands wait behind it
            self._inbox.popleft()
            try:
                command()
            except Exception:  # noqa: BLE001 - one bad command must not stop the engine
                logger.exception("an engine command failed")

    def _publish(self, outputs: list[EngineOutput]) -> None:
        if not outputs or self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._deliver, outputs)
        except RuntimeError:  # the event loop has closed: nobody is left to hear them
            pass
