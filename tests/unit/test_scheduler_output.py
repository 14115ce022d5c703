"""RunnerOutput.merge: the results of a step run in parts come together, every field of them."""
from __future__ import annotations

from dataclasses import fields

from scheduler.output import BeamCandidates, RunnerOutput


def test_merging_parts_keeps_every_result_and_adds_up_the_seconds():
    first = RunnerOutput(probabilities={"c": [0.5, 0.5]}, embeddings={"e": [1.0]},
                         next_token_ids={"g": 7}, errors={"x": "broke"},
                         beam_candidates={"b": BeamCandidates([0, 1], [5, 6], [-1.0, -2.0])},
                         step_seconds={"decode": 0.25})
    second = RunnerOutput(probabilities={"c2": [1.0, 0.0]}, embeddings={"e2": [2.0]},
                          next_token_ids={"g2": 8}, errors={"y": "broke too"},
                          step_seconds={"decode": 0.5, "prefill": 1.0})
    merged = RunnerOutput()
    merged.merge(first)
    merged.merge(second)
    assert merged.embeddings == {"e": [1.0], "e2": [2.0]}
    assert merged.probabilities == {"c": [0.5, 0.5], "c2": [1.0, 0.0]}
    assert merged.next_token_ids == {"g": 7, "g2": 8}
    assert merged.errors == {"x": "broke", "y": "broke too"}
    assert merged.beam_candidates == first.beam_candidates
    assert merged.step_seconds == {"decode": 0.75, "prefill": 1.0}
    # A field added to the contract later is merged too, or this test names it.
    assert all(getattr(merged, f.name) for f in fields(RunnerOutput))
