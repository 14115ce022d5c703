"""Server-sent events, the one way every streaming endpoint answers.

sse-starlette cancels the event generator when the client goes, but a generator that never ran
(the client left before the first event, or the answer's start could not be sent) has nothing to
cancel: a request aborted only from the generator's `finally` would run on for no one. So the
response owns what it streams: whatever ends it, it closes it.
"""
from __future__ import annotations

import json
from typing import AsyncIterator, Callable

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from takeoff.engine.submission import Submission
from takeoff.errors import ApiError


def takeoff_error(error: ApiError) -> ServerSentEvent:
    """A failure after the stream has started, as the Takeoff API sends it: `event: error`."""
    return ServerSentEvent(data=json.dumps(error.body()), event="error")


class EventStream(EventSourceResponse):
    """An SSE response of `events`, made from the requests of `work`, an admitted Submission;
    an ApiError the events raise becomes `error_event(error)`, the stream's last. Whatever ends
    the response (its last event, the client leaving, even before the first event) closes
    `work`: what has not finished is aborted."""

    def __init__(self, events: AsyncIterator[ServerSentEvent], work: Submission,
                 error_event: Callable[[ApiError], ServerSentEvent] = takeoff_error) -> None:
        super().__init__(_until_error(events, error_event))
        self._work = work

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._work.close()


async def _until_error(events: AsyncIterator[ServerSentEvent],
                       error_event: Callable[[ApiError], ServerSentEvent]):
    try:
        async for event in events:
            yield event
    except ApiError as error:
        yield error_event(error)
