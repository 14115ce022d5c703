"""Prometheus metrics of one server, in a registry of its own (several apps may share a process)."""
from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Latency buckets in seconds, from a fast tiny-model step to a slow queue wait.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("takeoff_requests", "HTTP requests answered, by endpoint and status",
                                ["endpoint", "status"], registry=r)
        self.queue_length = Gauge("takeoff_queue_length", "Requests waiting to be scheduled",
                                  registry=r)
        self.running_batch_size = Gauge("takeoff_running_batch_size",
                                        "Requests in the running batch (generations and "
                                        "classifications)", registry=r)
        self.kv_slots_in_use = Gauge("takeoff_kv_slots_in_use", "KV-cache slots held by "
                                     "generations", registry=r)
        self.kv_slots_total = Gauge("takeoff_kv_slots_total", "KV-cache slots in all", registry=r)
        self.time_to_first_token = Histogram(
            "takeoff_time_to_first_token_seconds", "From arrival to the first generated token",
            buckets=LATENCY_BUCKETS, registry=r)
        self.inter_token_latency = Histogram(
            "takeoff_inter_token_latency_seconds", "Between two tokens of one generation",
            buckets=LATENCY_BUCKETS, registry=r)
        self.generated_tokens = Counter("takeoff_generated_tokens", "Tokens generated", registry=r)
        self.step_duration = Histogram("takeoff_step_duration_seconds",
                                       "Engine step time by kind of work", ["kind"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.finished_requests = Counter("takeoff_finished_requests",
                                         "Engine requests finished, by reason", ["reason"],
                                         registry=r)

    def watch_engine(self, num_waiting: Callable[[], int], num_running: Callable[[], int],
                     num_slots_in_use: Callable[[], int], num_slots: Callable[[], int]) -> None:
        """The gauges read the engine at scrape time, so they are never stale."""
        self.queue_length.set_function(num_waiting)
        self.running_batch_size.set_function(num_running)
        self.kv_slots_in_use.set_function(num_slots_in_use)
        self.kv_slots_total.set_function(num_slots)

    def render(self) -> bytes:
        return generate_latest(self.registry)
