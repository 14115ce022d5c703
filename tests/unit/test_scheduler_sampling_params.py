"""SamplingRequest: the API's defaults, then the reader's, then what the client set; the server's
caps clamp a default and refuse an explicit value above them; a beam search decodes greedily
unless the client asks to sample, and its errors name the client's fields."""
from __future__ import annotations

import pytest

from scheduler.sampling_params import SamplingError, SamplingParams, SamplingRequest


def test_each_layer_wins_over_the_one_before():
    request = SamplingRequest(explicit={"top_k": 5},
                              defaults={"temperature": 1.0, "top_k": 0, "top_p": 0.9})
    params = request.resolve({"temperature": 0.7, "top_k": 50}, max_new_tokens=512)
    assert (params.top_k, params.temperature, params.top_p) == (5, 0.7, 0.9)
    assert params.repetition_penalty == SamplingParams().repetition_penalty


def test_a_default_above_the_cap_is_clamped_and_none_means_the_cap():
    assert SamplingRequest().resolve({}, max_new_tokens=16).max_new_tokens == 16
    assert SamplingRequest(defaults={"max_new_tokens": None}).resolve(
        {}, max_new_tokens=300).max_new_tokens == 300
    reader_says = SamplingRequest().resolve({"max_new_tokens": 64}, max_new_tokens=512)
    assert reader_says.max_new_tokens == 64


def test_an_explicit_value_above_the_cap_names_the_clients_field():
    request = SamplingRequest({"max_new_tokens": 17}, names={"max_new_tokens": "max_tokens"})
    with pytest.raises(SamplingError) as caught:
        request.resolve({}, max_new_tokens=16)
    assert caught.value.field == "max_tokens" and "at most 16" in str(caught.value)


def test_min_new_tokens_is_checked_against_the_resolved_maximum():
    request = SamplingRequest({"min_new_tokens": 20}, names={"min_new_tokens": "min_tokens"})
    assert request.resolve({}, max_new_tokens=512).min_new_tokens == 20
    with pytest.raises(SamplingError) as caught:
        request.resolve({}, max_new_tokens=16)
    assert caught.value.field == "min_tokens"


def test_fixed_params_come_back_unchanged_and_unknown_fields_are_refused():
    params = SamplingParams(max_new_tokens=9, top_k=0, temperature=0.5, seed=3, stop=("x",))
    assert SamplingRequest.fixed(params).resolve({"top_k": 40}, max_new_tokens=9) == params
    with pytest.raises(ValueError):
        SamplingRequest({"num_beam": 4})


def test_num_beams_over_the_limit_is_refused_from_the_client_and_lowered_from_a_default():
    limit = (4, "on this reader")
    request = SamplingRequest({"num_beams": 5}, names={"num_beams": "n"})
    with pytest.raises(SamplingError) as caught:
        request.resolve({}, max_new_tokens=16, beam_limit=limit)
    assert caught.value.field == "n" and str(caught.value) == "'n' must be at most 4 on this reader"
    from_reader = SamplingRequest().resolve({"num_beams": 6, "num_return_sequences": 6},
                                            max_new_tokens=16, beam_limit=limit)
    assert (from_reader.num_beams, from_reader.num_return_sequences) == (4, 4)
    assert SamplingRequest().resolve({}, max_new_tokens=16, beam_limit=limit).num_beams == 1


def test_a_beam_search_is_greedy_unless_the_client_asked_to_sample():
    openai_like = {"temperature": 1.0, "top_k": 0}  # an API whose default samples
    beams = SamplingRequest({"num_beams": 3}, openai_like).resolve({}, max_new_tokens=16)
    assert beams.is_greedy and beams.num_beams == 3
    sampled = SamplingRequest({"num_beams": 3, "temperature": 0.7}, openai_like,
                              names={"temperature": "sampling_temperature"})
    with pytest.raises(SamplingError) as caught:
        sampled.resolve({}, max_new_tokens=16)
    assert caught.value.field == "num_beams" and "'sampling_temperature'" in str(caught.value)


def test_a_beam_error_names_the_clients_field():
    request = SamplingRequest({"num_beams": 2, "num_return_sequences": 3},
                              names={"num_return_sequences": "n"})
    with pytest.raises(SamplingError) as caught:
        request.resolve({}, max_new_tokens=16)
    assert caught.value.field == "n" and str(caught.value).startswith("'n' must be 1..'num_beams'")
