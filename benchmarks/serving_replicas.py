"""`python -m benchmarks.serving --replicas N`: the throughput workload on Ray Serve replicas.

The HTTP row of benchmarks.serving (the same seeded requests, all sent at once as concurrent SSE
streams) is run again against `takeoff serve` on a local Ray cluster (127.0.0.1): once with one
replica (`--autoscale 1:1`: Ray's proxy in the path, one engine) and once with N replicas (the
router spreads the streams over N engines). Each replica reserves one CPU and runs one torch
thread. The single-process server is run again right before them, as their baseline: on a
shared machine figures drift within minutes.
"""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

START_TIMEOUT_S = 300


async def replica_ids(http, url: str) -> set[str]:
    """The replicas that answer /reader_groups (each lists its readers, marked by replica)."""
    async with http.get(url + "/reader_groups") as response:
        if response.status != 200:
            return set()
        groups = await response.json()
    return {reader["replica"] for readers in groups.values() for reader in readers}


async def wait_for_replicas(url: str, count: int, timeout_s: float = START_TIMEOUT_S,
                            avoid: str | None = None, process=None) -> set[str]:
    """Until `count` replicas are up (none of them `avoid`) and Ray's proxy routes to each (it
    learns of a new replica a moment after the replica is up); their ids."""
    import aiohttp

    deadline = time.monotonic() + timeout_s
    routed: set[str] = set()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        while time.monotonic() < deadline and (process is None or process.poll() is None):
            try:
                ids = await replica_ids(http, url)
                async with http.get(url + "/health") as response:
                    routed.add(response.headers.get("X-Takeoff-Replica"))
                if len(ids) == count and avoid not in ids and ids <= routed:
                    return ids
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{count} replicas did not come up at {url}")


def measure_replicas(args, model_dir, classifier_dir, tmp, requests, prompts) -> dict:
    """Throughput rows, back to back in this order: one `takeoff serve` process, then 1 and N
    replicas on Ray Serve. Besides tokens/s, each row has the CPU seconds its server's processes
    used: on a CPU that others share, more processes also win a larger share of it."""
    from benchmarks.serving import start_server

    rows = {}
    for name, count, flags in (("process_1", 0, []),
                               ("ray_1_replica", 1, ["--autoscale", "1:1"]),
                               (f"ray_{args.replicas}_replicas", args.replicas,
                                ["--replicas", str(args.replicas)])):
        flags += ["--num-cpus-per-replica", "1"] if count else []
        with start_server(args, model_dir, classifier_dir, tmp, flags) as server:
            if count:
                asyncio.run(wait_for_replicas(server.url, count))
            rows[name] = _measure_with_cpu(server, requests, prompts)
    return rows


def _measure_with_cpu(server, requests, prompts) -> dict:
    from benchmarks.serving import measure_http

    load_before, cpu_before = os.getloadavg()[0], cpu_seconds(server.process.pid)
    row = asyncio.run(measure_http(server.url, requests, prompts))
    row["server_cpu_s"] = cpu_seconds(server.process.pid) - cpu_before
    row["tokens_per_cpu_s"] = row["tokens"] / row["server_cpu_s"]
    row["load_average"] = [load_before, os.getloadavg()[0]]
    return row


def cpu_seconds(root: int) -> float:
    """User + system CPU time of a process and of every live process under it."""
    ticks = 0
    for pid in [root, *descendants(root)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> list[int]:
    """Every live process under `root` (Ray's GCS, raylet and workers are under the driver)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def print_ratios(report: dict, num_replicas: int) -> None:
    rows = report["throughput"]
    one, many = rows["ray_1_replica"], rows[f"ray_{num_replicas}_replicas"]
    print(f"\n{'back to back':<28}{'tokens/s':>10}{'server CPU s':>14}{'tokens/CPU s':>14}"
          f"{'load avg':>14}")
    for name in ("process_1", "ray_1_replica", f"ray_{num_replicas}_replicas"):
        row = rows[name]
        print(f"{name:<28}{row['tokens_per_s']:>10.1f}{row['server_cpu_s']:>14.1f}"
              f"{row['tokens_per_cpu_s']:>14.1f}{'%.1f-%.1f' % tuple(row['load_average']):>14}")
    print(f"Ray Serve, {num_replicas} replicas / 1 replica: "
          f"{many['tokens_per_s'] / one['tokens_per_s']:.2f}x tokens/s")
