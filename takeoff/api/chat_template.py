"""Chat prompt templates: how /v1/chat/completions turns a list of messages into one encoder input.

A seq2seq model has no chat format of its own, so each generator group names one of these.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from takeoff.feedback.task import rewrite_prompt


@dataclass(frozen=True)
class Message:
    role: str  # "system" (or "developer"), "user", "assistant", "tool"
    content: str


def feedback_template(messages: list[Message]) -> str:
    """The rewriter's prompt: the system message is the context, the last user message is the
    feedback to rewrite; with no system message, the last user message goes in as it is."""
    context = "\n".join(m.content for m in messages if m.role in ("system", "developer"))
    feedback = last_user_message(messages)
    return rewrite_prompt(context, feedback) if context.strip() else feedback


def transcript_template(messages: list[Message]) -> str:
    """Every message on its own line as `Role: content`, for a model tuned on dialogues."""
    return "\n".join(f"{m.role.capitalize()}: {m.content}" for m in messages)


def last_user_message(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    raise ValueError("'messages' must hold at least one message with role 'user'")


CHAT_TEMPLATES: dict[str, Callable[[list[Message]], str]] = {
    "feedback": feedback_template,
    "transcript": transcript_template,
}
DEFAULT_CHAT_TEMPLATE = "feedback"


def template_of(config, group: str) -> Callable[[list[Message]], str]:
    """The chat template of a generator group: `--chat-template` sets the start-up generator
    group's (config: a ServerConfig); any other group has the default."""
    name = config.chat_template if group == config.generator_group else DEFAULT_CHAT_TEMPLATE
    return CHAT_TEMPLATES[name]
