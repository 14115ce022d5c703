"""A soak: takeoff under mixed load for many minutes, watched for leaks and server errors.

    python -m benchmarks.soak --minutes 10 --json benchmarks/results/soak.json

Starts `takeoff serve` with the demo models on 127.0.0.1 (or drives --url, with --server-pid for
its memory) and, until the time is up, sends at Poisson arrivals a mix of streamed and whole
generations, feedback analyses with streamed rewrites, OpenAI completions and, on a loop of its
own, classifications. A share of clients leave early: a stream closed after a few pieces, a
whole request abandoned before its answer. At the start of every minute a burst of
max_num_seqs + max_queue + --burst-excess generations arrives at once, so some must get 429.

Per minute: calls answered, errors by status, abandoned calls, p99 latency of the calls that
completed, and the server's RSS and KV slots in use at its end. At the end (after the last
answers): slots still in use, and how long they took to reach 0. Targets: no 5xx, no slot in
use at the end, RSS growth from minute 2 to the last below 5%, and from minute 5 (after the
warm-up) below 1%. Writes JSON and a PNG plot.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from tqdm import tqdm

from benchmarks import soak_calls
from benchmarks.load import DEFAULT_THREADS
from benchmarks.models import DEMO_CLASSIFIER, DEMO_REWRITER
from benchmarks.report import pyplot, save_report
from benchmarks.servers import (ServerProcess, free_port, process_memory_mb,
                                stopping_servers_on_interrupt, takeoff_command, threads_env)
from benchmarks.soak_calls import MinuteLog


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with (stopping_servers_on_interrupt(),
          tempfile.TemporaryDirectory(prefix="takeoff-soak-") as tmp):
        if args.url:
            report = asyncio.run(soak(args.url.rstrip("/"), args,
                                      lambda: process_memory_mb(args.server_pid)))
        else:
            port = free_port()
            command = takeoff_command(port, DEMO_REWRITER, DEMO_CLASSIFIER,
                                      "--max-num-seqs", str(args.max_num_seqs),
                                      "--max-queue", str(args.max_queue), "--log-level", "warning")
            with ServerProcess(command, port, Path(tmp) / "server.log",
                               env=threads_env(args.threads)) as server:
                report = asyncio.run(soak(server.url, args, server.rss_mb))
                report["server_log_tail"] = server.log_tail(3000)
    print_summary(report)
    if args.json:
        save_report(report, args.json, plot)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--minutes", type=int, default=10)
    add("--json", help="write the report here, and a .png plot beside it")
    add("--rate", type=float, default=3.0, help="mixed calls per second (default 3)")
    add("--classify-rate", type=float, default=2.0, help="classifications per second (default 2)")
    add("--disconnect-share", type=float, default=0.2, help="clients that leave early (0.2)")
    add("--max-num-seqs", type=int, default=16, help="the server's KV slots (default 16)")
    add("--max-queue", type=int, default=32, help="the server's queue bound (default 32)")
    add("--burst-excess", type=int, default=16, help="burst calls beyond slots + queue")
    add("--threads", type=int, default=DEFAULT_THREADS, help="the server's compute threads "
                                                             f"(default {DEFAULT_THREADS})")
    add("--url", help="soak the server at this URL (give its --max-num-seqs and --max-queue)")
    add("--server-pid", type=int, help="with --url: its process id, for its memory")
    add("--drain-seconds", type=float, default=120.0, help="wait for the last answers this long")
    add("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.minutes < 1 or not 0 <= args.disconnect_share <= 1:
        parser.error("--minutes must be at least 1 and --disconnect-share within 0..1")
    return args


async def soak(url: str, args, rss_mb) -> dict:
    rng = random.Random(args.seed)
    log = [MinuteLog(i + 1) for i in range(args.minutes)]
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=args.drain_seconds + 60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        runner = soak_calls.Runner(http, url, log, rng, args.disconnect_share)
        end = runner.start + args.minutes * 60
        jobs = [runner.arrivals(end, args.rate, runner.mixed_call),
                runner.arrivals(end, args.classify_rate, runner.classify_call),
                runner.bursts(end, args.max_num_seqs + args.max_queue + args.burst_excess),
                _sample_each_minute(http, url, runner, log, rss_mb)]
        await asyncio.gather(*jobs)
        drained = await runner.drain(args.drain_seconds)
        slots, slots_zero_after_s = await soak_calls.slots_at_end(http, url)
    return build_report(args, log, drained, slots, slots_zero_after_s)


async def _sample_each_minute(http, url: str, runner, log: list[MinuteLog], rss_mb) -> None:
    with tqdm(total=len(log), desc="soak", unit="min", file=sys.stderr) as bar:
        for minute in log:
            await asyncio.sleep(max(0.0, runner.start + minute.number * 60 - time.monotonic()))
            minute.rss_mb = rss_mb()
            minute.slots_in_use = await soak_calls.metric(http, url, "takeoff_kv_slots_in_use")
            bar.update(1)
            bar.set_postfix(rss_mb=f"{minute.rss_mb or 0:.0f}", slots=minute.slots_in_use)


def build_report(args, log: list[MinuteLog], drained: bool, slots: float | None,
                 slots_zero_after_s: float | None) -> dict:
    minutes = [m.summary() for m in log]
    statuses: dict[str, int] = {}
    for m in minutes:
        for status, count in m["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    growth, settled = rss_growth(minutes, 2), rss_growth(minutes, 5)
    num_5xx = sum(count for status, count in statuses.items() if status.startswith("5"))
    return {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "minutes": minutes,
        "totals": {"answered": sum(m["answered"] for m in minutes),
                   "abandoned": sum(m["abandoned"] for m in minutes),
                   "statuses": statuses, "responses_5xx": num_5xx},
        "all_answered_before_drain_limit": drained,
        "slots_in_use_at_end": slots, "slots_zero_after_s": slots_zero_after_s,
        "rss_growth_minute_2_to_last": None if growth is None else round(growth, 4),
        "rss_growth_minute_5_to_last": None if settled is None else round(settled, 4),
        "targets": {"no_5xx": num_5xx == 0, "no_slots_in_use_at_end": slots == 0,
                    "rss_growth_below_5pct": None if growth is None else growth < 0.05,
                    "rss_growth_after_warm_up_below_1pct": None if settled is None
                    else settled < 0.01},
    }


def rss_growth(minutes: list[dict], start: int) -> float | None:
    """RSS growth from the end of minute `start` to the last minute's, as a fraction."""
    if len(minutes) <= start or not minutes[start - 1]["rss_mb"] or not minutes[-1]["rss_mb"]:
        return None
    return (minutes[-1]["rss_mb"] - minutes[start - 1]["rss_mb"]) / minutes[start - 1]["rss_mb"]


def print_summary(report: dict) -> None:
    print(f"\n{'minute':>6}{'answered':>10}{'abandoned':>10}{'p99 ms':>9}{'RSS MB':>9}"
          f"{'slots':>7}  statuses")
    for m in report["minutes"]:
        p99 = "-" if m["p99_ms"] is None else f"{m['p99_ms']:.0f}"
        rss = "-" if m["rss_mb"] is None else f"{m['rss_mb']:.1f}"
        print(f"{m['minute']:>6}{m['answered']:>10}{m['abandoned']:>10}{p99:>9}{rss:>9}"
              f"{m['slots_in_use'] if m['slots_in_use'] is not None else '-':>7}  {m['statuses']}")
    totals = report["totals"]
    print(f"answered {totals['answered']}, abandoned {totals['abandoned']}, "
          f"statuses {totals['statuses']}, 5xx {totals['responses_5xx']}")
    print(f"slots in use at the end: {report['slots_in_use_at_end']} (0 after "
          f"{report['slots_zero_after_s']} s); RSS growth minute 2 -> last: "
          f"{report['rss_growth_minute_2_to_last']}, minute 5 -> last: "
          f"{report['rss_growth_minute_5_to_last']}; targets {report['targets']}")


def plot(report: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    minutes = report["minutes"]
    numbers = [m["minute"] for m in minutes]
    figure, (rss, latency) = plt.subplots(1, 2, figsize=(11, 4))
    rss.plot(numbers, [m["rss_mb"] for m in minutes], "o-")
    rss.set_ylim(0, 1.1 * max((m["rss_mb"] or 0) for m in minutes) or 1)
    growth = report["rss_growth_minute_2_to_last"]
    rss.set_title("server RSS at the end of each minute (MB)"
                  + ("" if growth is None else f"; minute 2 to {numbers[-1]}: {growth:+.1%}"))
    latency.plot(numbers, [m["p99_ms"] for m in minutes], "o-", label="p99 latency (ms)")
    latency.set_yscale("log")
    latency.set_title("p99 latency of completed calls per minute (ms)")
    for axis in (rss, latency):
        axis.set_xlabel("minute")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
