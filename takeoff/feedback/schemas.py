"""The feedback coach's request body, validated once (the conventions of takeoff/api/schemas.py):
the text's and the context's size, and the sentences the text splits into; and its answers, as
/openapi.json describes them."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from takeoff.api.schemas import Answer, Body, text_field
from takeoff.errors import TooLarge
from takeoff.feedback.sentences import Sentence, split_sentences

MAX_TEXT_CHARS = 5000
MAX_CONTEXT_CHARS = 1000
MAX_SENTENCES = 64


class FeedbackBody(Body):
    """POST /v1/feedback/analyze and /v1/feedback/improve (`stream` is improve's)."""
    text: str
    context: str = ""
    stream: bool = False

    _check_text = field_validator("text", mode="before")(text_field)

    @field_validator("text", "context")
    @classmethod
    def _within_limits(cls, value: str, info: ValidationInfo) -> str:
        limit = MAX_TEXT_CHARS if info.field_name == "text" else MAX_CONTEXT_CHARS
        if len(value) > limit:
            raise TooLarge(f"'{info.field_name}' is {len(value)} characters; the limit is {limit}")
        if info.field_name == "text":
            count = len(split_sentences(value))
            if not count:
                raise ValueError("'text' has no sentences to analyze")
            if count > MAX_SENTENCES:
                raise TooLarge(f"'text' has {count} sentences; the limit is {MAX_SENTENCES}")
        return value

    @property
    def sentences(self) -> list[Sentence]:
        return split_sentences(self.text)


class AnalyzedSentence(Answer):
    text: str
    start: int = Field(description="offset of the sentence in `text`")
    end: int
    label: str
    score: float = Field(description="the classifier's probability for `label`")
    kind: Literal["constructive", "critical"]
    unsure: bool = Field(description="the kind holds less than 75% of the probability")


class Analysis(Answer):
    sentences: list[AnalyzedSentence]
    kind: Literal["constructive", "critical"]


class ImprovedSentence(AnalyzedSentence):
    rewrite: str | None = Field(description="the constructive version shown; null for a sentence kept "
                                            "as written (constructive, or no rewrite passed the checks)")
    rewrite_warning: str | None = Field(description="for a critical sentence with no rewrite: why none "
                                                    "of the rewriter's candidates passed the checks")


class Improvement(Answer):
    text: str
    sentences: list[ImprovedSentence]
    kind: Literal["constructive", "critical"]
