"""What a Triton request may carry, checked by the HTTP server's own request bodies, and how a
refusal reaches the client.

The generator's /generate fields arrive as Triton request parameters (gRPC `parameters={...}`, or
the fields beside `text` in Triton's HTTP generate extension) and are validated by
`GenerateStreamBody`, then resolved by the Engine for the reader it picks, exactly as
/generate_stream's are: the same layered defaults, the same --max-new-tokens cap, the same
messages. Two differences, both because Triton has no other place to say it: a parameter the body
does not know is refused rather than ignored, and `text`/`consumer_group` are refused as
parameters (the text is the input tensor, the group is the Triton model). Triton parameters are
scalars: `stop` is one sequence, and `json_schema` is JSON text.

PyTriton answers a failed request with `traceback.format_exception()` of whatever the callable
raised, under gRPC status INTERNAL (HTTP 500): `Refused` has no traceback, so that text is one
line naming the status the HTTP server would have answered and the reason.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from pydantic import ConfigDict, ValidationError

from takeoff.api.schemas import BeamFields, parse, text_field
from takeoff.api.takeoff_schemas import GenerateStreamBody
from takeoff.errors import ApiError, bad_request, validation_error

NOT_PARAMETERS = {
    "text": "'text' is the model's input tensor, not a parameter",
    "consumer_group": "'consumer_group' is not a parameter: each consumer group is its own "
                      "Triton model",
}


class Refused(Exception):
    """A request refused for a reason its client can act on."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(f"{error.status} {error.type}: {error.message}")
        self.error = error

    # PyTriton formats what the callable raised with its traceback; without one, the client reads
    # "takeoff.triton.parameters.Refused: 400 invalid_request_error: <reason>" and no source code.
    @property
    def __traceback__(self):
        return None

    @__traceback__.setter
    def __traceback__(self, value) -> None:
        pass


class GenerateParameters(GenerateStreamBody):
    """/generate_stream's body, refusing names it does not know."""
    model_config = ConfigDict(extra="forbid")


@contextlib.contextmanager
def refusing() -> Iterator[None]:
    """Turn the server's errors (ApiError, pydantic's ValidationError) into `Refused`."""
    try:
        yield
    except ApiError as exc:
        raise Refused(exc) from None
    except ValidationError as exc:
        raise Refused(_bad_body(exc)) from None


def generate_body(text: str, parameters: dict) -> GenerateParameters:
    """The generator's request as /generate_stream would see it (raises ApiError or
    ValidationError, for `refusing` to turn into Refused); its `sampling()` goes to the Engine."""
    for name, reason in NOT_PARAMETERS.items():
        if name in parameters:
            raise bad_request(reason, name)
    return parse(GenerateParameters, {**parameters, "text": text})


def single_pass_texts(raw_texts, parameters: dict) -> list[str]:
    """A classifier's or embedder's texts, each checked as /classify and /embed check one (that
    model takes no parameters)."""
    if parameters:
        name = sorted(parameters)[0]
        raise bad_request(f"'{name}' is not a parameter: this model takes none", name)
    return [decode_text(raw) for raw in raw_texts]


def decode_text(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("'text' must be UTF-8 text", "text") from None
    try:
        return text_field(text)
    except ValueError as exc:
        raise bad_request(str(exc), "text") from None


def _bad_body(exc: ValidationError) -> ApiError:
    error = exc.errors(include_url=False)[0]
    if error["type"] == "extra_forbidden":
        name = str(error["loc"][0])
        # the decoding parameters first, beam search's (a base class's, so listed first by
        # pydantic) after them
        names = [n for n in GenerateParameters.model_fields if n not in NOT_PARAMETERS]
        beam = set(BeamFields.model_fields)
        known = ", ".join([n for n in names if n not in beam] + [n for n in names if n in beam])
        return bad_request(f"'{name}' is not a parameter of this model; it takes {known}", name)
    return validation_error(exc)
