"""From outcomes to figures: percentiles, one load point's summary, and goodput.

A load point's `errors` are the calls that failed for any reason but a 429 (connection errors,
5xx, 4xx, streams that ended in an error, calls cut off at the time limit); `rejected_429`
counts the 429s. Latency percentiles are over the calls that succeeded; inter-token latency
pools the gaps of every successful stream.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from benchmarks.loadgen import Outcome

PERCENTILES = (50, 90, 99)


def percentiles_ms(seconds: list[float]) -> dict[str, float | None]:
    """{"p50", "p90", "p99"} in ms (linear interpolation between ranks); None for no values."""
    if not seconds:
        return {f"p{q}": None for q in PERCENTILES}
    ms = np.asarray(seconds, dtype=float) * 1000
    return {f"p{q}": round(float(np.percentile(ms, q)), 2) for q in PERCENTILES}


def summarize(system: str, rate: float | None, concurrency: int | None,
              outcomes: list[Outcome], duration_s: float, streamed: bool,
              peak_rss_mb: float | None) -> dict:
    """One system at one load point, in the report's shape."""
    ok = [o for o in outcomes if o.ok]
    num_tokens = sum(o.num_tokens for o in ok)
    return {
        "system": system, "rate": rate, "concurrency": concurrency,
        "requests": len(outcomes), "succeeded": len(ok),
        "errors": sum(1 for o in outcomes if not o.ok and o.status != 429),
        "rejected_429": sum(1 for o in outcomes if o.status == 429),
        "errors_by_status": dict(Counter(str(o.status) for o in outcomes
                                         if not o.ok and o.status != 429)),
        "first_error": next((o.error for o in outcomes if o.error), None),
        "tokens": num_tokens,
        "duration_s": round(duration_s, 3),
        "tokens_per_s": round(num_tokens / duration_s, 2) if duration_s > 0 else 0.0,
        "achieved_rps": round(len(ok) / duration_s, 3) if duration_s > 0 else 0.0,
        "ttft_ms": percentiles_ms([o.ttft_s for o in ok]),
        "itl_ms": percentiles_ms([gap for o in ok for gap in o.itl_s] if streamed else []),
        "e2e_ms": percentiles_ms([o.e2e_s for o in ok]),
        "ttft_is_e2e": not streamed,  # no streaming: the first token arrives with the last
        "peak_rss_mb": None if peak_rss_mb is None else round(peak_rss_mb, 1),
        "latencies_ms": {"ttft": [round(o.ttft_s * 1000, 1) for o in ok],
                         "e2e": [round(o.e2e_s * 1000, 1) for o in ok]},
    }


def load_of(point: dict) -> float:
    """The load a point stands for: its offered rate, or for a closed loop the rate it achieved."""
    return point["rate"] if point["rate"] is not None else point["achieved_rps"]


def meets_slo(point: dict, latency: str = "ttft_ms", limit_ms: float = 1000.0) -> bool:
    """No call failed (429s included) and the latency's p99 is within the limit."""
    p99 = point[latency]["p99"]
    return (point["requests"] > 0 and point["errors"] == 0 and point["rejected_429"] == 0
            and p99 is not None and p99 <= limit_ms)


def goodput(points: list[dict], latency: str = "ttft_ms", limit_ms: float = 1000.0) -> dict[str, float]:
    """Per system, the highest load at which it met the SLO (0.0 when it never did)."""
    best: dict[str, float] = {}
    for point in points:
        best.setdefault(point["system"], 0.0)
        if meets_slo(point, latency, limit_ms):
            best[point["system"]] = max(best[point["system"]], load_of(point))
    return best


def ttft_p99_ratios(points: list[dict], reference: str = "takeoff") -> dict[str, dict[str, float]]:
    """The reference's TTFT p99 over each other system's, at each load both ran (below 1: the
    reference answers sooner)."""
    mine = {load_of(p): p["ttft_ms"]["p99"] for p in points if p["system"] == reference}
    ratios: dict[str, dict[str, float]] = {}
    for point in points:
        load, theirs = load_of(point), point["ttft_ms"]["p99"]
        if point["system"] != reference and mine.get(load) and theirs:
            ratios.setdefault(point["system"], {})[f"{load:g}"] = round(mine[load] / theirs, 3)
    return ratios
