"""The load benchmark's report: a markdown table, and a PNG with three panels (TTFT p99 and
tokens/s against load, one line per system; the latency CDF at the highest common load)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.report import pyplot

COLUMNS = ("system", "load", "requests", "errors", "429", "served req/s", "tokens/s", "TTFT p50 / p90 / p99 ms",
           "ITL p50 / p90 / p99 ms", "e2e p50 / p90 / p99 ms", "peak RSS MB")


def markdown(report: dict) -> str:
    config = report["config"]
    threads = f"{config['threads']} compute thread" + ("s" if config["threads"] != 1 else "")
    lines = [f"Workload `{config['workload']}`, {config['num_requests']} requests per load point, "
             f"{threads} per server, device {config['device']}, dtype {config['dtype']}.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += [_row(point) for point in report["systems"]]
    lines += ["", "TTFT marked * is the end-to-end latency: that server does not stream, so the "
              "first token arrives with the last. ITL is measured on streams only.", "",
              f"Goodput (highest load with TTFT p99 ≤ {config['slo_ttft_ms']:.0f} ms and no "
              f"failed request, 429s included): "
              + ", ".join(f"{s} {v:g} req/s" for s, v in report["goodput_rps"].items()) + ".",
              f"With end-to-end p99 ≤ {config['slo_e2e_ms']:.0f} ms instead: "
              + ", ".join(f"{s} {v:g} req/s" for s, v in report["goodput_e2e_rps"].items()) + "."]
    for system, ratios in report.get("takeoff_ttft_p99_ratio", {}).items():
        lines.append(f"takeoff's TTFT p99 / {system}'s: "
                     + ", ".join(f"{r} at {load}" for load, r in ratios.items()) + ".")
    return "\n".join(lines) + "\n"


def _row(point: dict) -> str:
    load = (f"{point['rate']:g} req/s" if point["rate"] is not None
            else clients(point["concurrency"]))
    ttft = _triple(point["ttft_ms"]) + (" *" if point["ttft_is_e2e"] else "")
    rss = "-" if point["peak_rss_mb"] is None else f"{point['peak_rss_mb']:.0f}"
    cells = (point["system"], load, str(point["requests"]), str(point["errors"]),
             str(point["rejected_429"]), f"{point['achieved_rps']:.2f}",
             f"{point['tokens_per_s']:.1f}", ttft,
             _triple(point["itl_ms"]), _triple(point["e2e_ms"]), rss)
    return "| " + " | ".join(cells) + " |"


def clients(count: int) -> str:
    return f"{count} client" + ("s" if count != 1 else "")


def _triple(percentiles: dict) -> str:
    if percentiles["p50"] is None:
        return "-"
    return " / ".join(f"{percentiles[p]:.0f}" for p in ("p50", "p90", "p99"))


def x_of(point: dict) -> float:
    return point["rate"] if point["rate"] is not None else point["concurrency"]


def plot(report: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    by_system: dict[str, list[dict]] = {}
    for point in report["systems"]:
        by_system.setdefault(point["system"], []).append(point)
    colors = {system: f"C{i}" for i, system in enumerate(by_system)}  # one per system, all panels
    figure, (ttft, tokens, cdf) = plt.subplots(1, 3, figsize=(15, 4.5))
    closed = report["systems"][0]["rate"] is None
    for system, points in by_system.items():
        points = sorted(points, key=x_of)
        xs = [x_of(p) for p in points]
        ttft.plot(xs, [p["ttft_ms"]["p99"] or np.nan for p in points], "o-", color=colors[system],
                  label=system + (" (e2e)" if points[0]["ttft_is_e2e"] else ""))
        tokens.plot(xs, [p["tokens_per_s"] for p in points], "o-", color=colors[system],
                    label=system)
    ttft.axhline(report["config"]["slo_ttft_ms"], color="gray", linestyle=":", label="SLO")
    ttft.set_yscale("log")
    xs = sorted({x_of(p) for p in report["systems"]})
    for axis, title in ((ttft, "TTFT p99 (ms)"), (tokens, "output tokens/s")):
        axis.set_xscale("log")
        axis.set_xticks(xs, [f"{x:g}" for x in xs])
        axis.minorticks_off()
        axis.set_xlabel("clients" if closed else "offered load (req/s)")
        axis.set_title(title)
        axis.legend(fontsize=8)
    _plot_cdf(cdf, by_system, colors)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def highest_common_load(by_system: dict[str, list[dict]]) -> float | None:
    common = set.intersection(*({x_of(p) for p in points} for points in by_system.values()))
    return max(common) if common else None


def _plot_cdf(axis, by_system: dict[str, list[dict]], colors: dict[str, str]) -> None:
    """TTFT solid, end-to-end dashed; one dashed line where TTFT is the e2e latency."""
    load = highest_common_load(by_system)
    for system, points in by_system.items():
        point = next(p for p in points if x_of(p) == load)
        for name, style in (("ttft", "-"), ("e2e", "--")):
            values = np.sort(point["latencies_ms"][name])
            if not len(values) or (name == "ttft" and point["ttft_is_e2e"]):
                continue
            label = f"{system} {name}" + (" (= ttft)" if point["ttft_is_e2e"] else "")
            axis.plot(values, np.arange(1, len(values) + 1) / len(values), style,
                      color=colors[system], label=label)
    axis.set_xscale("log")
    axis.set_xlabel("latency (ms)")
    axis.set_ylabel("share of calls")
    axis.set_title(f"latency CDF at {load:g}")
    axis.legend(fontsize=8)
