"""A Triton request's parameters are /generate_stream's body, and a refusal reaches the client
as one line: no PyTriton needed."""
from __future__ import annotations

import traceback

import pytest
from pydantic import ValidationError

from takeoff.api.schemas import parse
from takeoff.api.takeoff_schemas import GenerateStreamBody
from takeoff.errors import ApiError, bad_request
from takeoff.triton.parameters import Refused, generate_body, refusing


def test_a_refusal_reads_as_one_line_without_a_traceback():
    def callable_that_refuses():
        raise Refused(bad_request("'sampling_topp': must be at most 1", "sampling_topp"))

    try:
        callable_that_refuses()
    except Refused as exc:
        # What PyTriton sends the client: format_exception of what the callable raised.
        text = "".join(traceback.format_exception(None, exc, exc.__traceback__))
    assert text == "takeoff.triton.parameters.Refused: 400 invalid_request_error: " \
                   "'sampling_topp': must be at most 1\n"


def test_the_parameters_ask_for_the_same_sampling_as_the_same_fields_of_generate_stream():
    fields = {"max_new_tokens": 7, "sampling_temperature": 0.5, "stop": "END",
              "json_schema": '{"type": "object"}'}
    from_triton = generate_body("hi", fields).sampling()
    from_http = parse(GenerateStreamBody, {"text": "hi", **fields}).sampling()
    assert from_triton == from_http
    assert from_triton.explicit["stop"] == ("END",) and from_triton.names["top_p"] == \
        "sampling_topp"


@pytest.mark.parametrize("parameters, message", [
    ({"temperature": 0.5}, "400 invalid_request_error: 'temperature' is not a parameter of this "
                           "model; it takes max_new_tokens, min_new_tokens"),
    ({"consumer_group": "x"}, "400 invalid_request_error: 'consumer_group' is not a parameter: "
                              "each consumer group is its own Triton model"),
    ({"sampling_topk": -2}, "400 invalid_request_error: sampling_topk: Input should be greater "
                            "than or equal to 0"),
])
def test_bad_parameters_are_refused_naming_the_field(parameters, message):
    with pytest.raises(Refused) as refused, refusing():
        generate_body("hi", parameters)
    assert str(refused.value).startswith(message)
    assert isinstance(refused.value.error, ApiError)
    assert not isinstance(refused.value.__cause__, ValidationError)  # nothing chained to print
