"""The load benchmark's arithmetic: percentiles, a load point's summary in the report's shape,
goodput, and the markdown table."""
from __future__ import annotations

import json

import pytest

from benchmarks.load_report import markdown
from benchmarks.load_stats import goodput, meets_slo, percentiles_ms, summarize, ttft_p99_ratios
from benchmarks.loadgen import CUT_OFF, Outcome


def test_percentiles_interpolate_between_ranks_in_milliseconds():
    assert percentiles_ms([0.001 * i for i in range(1, 101)]) == {"p50": 50.5, "p90": 90.1,
                                                                   "p99": 99.01}
    assert percentiles_ms([0.25]) == {"p50": 250.0, "p90": 250.0, "p99": 250.0}
    assert percentiles_ms([]) == {"p50": None, "p90": None, "p99": None}


def outcomes() -> list[Outcome]:
    return [Outcome(200, e2e_s=1.0, ttft_s=0.1, itl_s=[0.02, 0.04], num_tokens=3),
            Outcome(200, e2e_s=2.0, ttft_s=0.3, itl_s=[0.06], num_tokens=2),
            Outcome(429, e2e_s=0.01, ttft_s=0.01, error="HTTP 429: queue full"),
            Outcome(500, e2e_s=0.5, ttft_s=0.5, error="HTTP 500: boom"),
            Outcome(0, error=CUT_OFF)]


def test_a_point_counts_429s_apart_from_errors_and_times_only_successes():
    point = summarize("takeoff", 2.0, None, outcomes(), duration_s=5.0, streamed=True,
                      peak_rss_mb=512.04)
    assert (point["requests"], point["succeeded"], point["errors"], point["rejected_429"]) == (5, 2, 2, 1)
    assert point["errors_by_status"] == {"500": 1, "0": 1}
    assert point["tokens"] == 5 and point["tokens_per_s"] == 1.0
    assert point["ttft_ms"]["p50"] == 200.0 and point["e2e_ms"]["p50"] == 1500.0
    assert point["itl_ms"]["p50"] == 40.0  # the gaps of both streams, pooled
    assert point["peak_rss_mb"] == 512.0
    assert point["latencies_ms"] == {"ttft": [100.0, 300.0], "e2e": [1000.0, 2000.0]}


def test_a_server_that_does_not_stream_has_no_inter_token_latency():
    point = summarize("hf-dynamic-batching", 1.0, None, outcomes()[:2], 5.0, streamed=False,
                      peak_rss_mb=None)
    assert point["ttft_is_e2e"] is True
    assert point["itl_ms"] == {"p50": None, "p90": None, "p99": None}


def point(system, rate, p99_ttft, errors=0, rejected=0, concurrency=None, achieved=0.0):
    return {"system": system, "rate": rate, "concurrency": concurrency, "requests": 10,
            "errors": errors, "rejected_429": rejected, "achieved_rps": achieved,
            "ttft_ms": {"p50": 1.0, "p90": 1.0, "p99": p99_ttft},
            "e2e_ms": {"p50": 1.0, "p90": 1.0, "p99": p99_ttft}}


def test_goodput_is_the_highest_rate_that_meets_the_slo():
    points = [point("takeoff", 1, 200), point("takeoff", 2, 900), point("takeoff", 4, 3000),
              point("hf", 1, 800), point("hf", 2, 700, rejected=1), point("hf", 4, 5000),
              point("ct2", 1, 1200)]
    assert goodput(points, "ttft_ms", 1000) == {"takeoff": 2, "hf": 1, "ct2": 0.0}
    assert goodput(points, "ttft_ms", 5000) == {"takeoff": 4, "hf": 4, "ct2": 1}


def test_a_failed_request_or_no_latency_misses_the_slo():
    assert meets_slo(point("takeoff", 1, 10))
    assert not meets_slo(point("takeoff", 1, 10, errors=1))
    assert not meets_slo(point("takeoff", 1, None))


def test_a_closed_loop_point_counts_the_rate_it_achieved():
    points = [point("takeoff", None, 100, concurrency=4, achieved=3.5),
              point("takeoff", None, 2000, concurrency=16, achieved=6.0)]
    assert goodput(points) == {"takeoff": 3.5}


def test_ttft_ratios_compare_takeoff_with_each_system_at_the_loads_both_ran():
    points = [point("takeoff", 1, 200), point("takeoff", 2, 600), point("hf", 1, 800),
              point("hf", 2, 1200), point("hf", 4, 3000), point("ct2", 1, None)]
    assert ttft_p99_ratios(points) == {"hf": {"1": 0.25, "2": 0.5}}


@pytest.fixture
def report():
    whole = [Outcome(200, e2e_s=1.0, ttft_s=1.0, num_tokens=3),  # not streamed: TTFT = e2e
             Outcome(200, e2e_s=2.0, ttft_s=2.0, num_tokens=2)]
    points = [summarize("takeoff", rate, None, outcomes()[:2], 4.0, True, 300.0)
              for rate in (1.0, 2.0)]
    points += [summarize("hf-dynamic-batching", rate, None, whole, 4.0, False, 300.0)
               for rate in (1.0, 2.0)]
    config = {"workload": "generation", "num_requests": 2, "threads": 2, "device": "cpu",
              "dtype": "float32", "slo_ttft_ms": 1000.0, "slo_e2e_ms": 10000.0}
    return {"config": config, "systems": points, "goodput_rps": goodput(points),
            "goodput_e2e_rps": goodput(points, "e2e_ms", 10000)}


def test_the_report_keeps_the_issues_keys_and_is_json(report):
    shape = {"system": str, "requests": int, "errors": int, "tokens_per_s": float,
             "ttft_ms": dict, "itl_ms": dict, "e2e_ms": dict, "peak_rss_mb": float}
    loaded = json.loads(json.dumps(report))
    assert set(loaded) >= {"config", "systems", "goodput_rps"}
    for entry in loaded["systems"]:
        for key, kind in shape.items():
            assert isinstance(entry[key], kind), key
        assert "rate" in entry and "concurrency" in entry
        for latency in ("ttft_ms", "itl_ms", "e2e_ms"):
            assert set(entry[latency]) == {"p50", "p90", "p99"}
    assert loaded["goodput_rps"] == {"takeoff": 2.0, "hf-dynamic-batching": 0.0}


def test_the_table_has_a_row_per_point_and_marks_ttft_that_is_e2e(report):
    table = markdown(report)
    rows = [line for line in table.splitlines() if line.startswith("| takeoff")
            or line.startswith("| hf-dynamic")]
    assert len(rows) == 4
    assert all(row.count(" * |") == 1 for row in rows if "hf-dynamic" in row)
    assert all(" * |" not in row for row in rows if row.startswith("| takeoff"))
    assert "takeoff 2 req/s, hf-dynamic-batching 0 req/s" in table
