"""`takeoff serve --replicas N ...`: the flags that put the server on Ray Serve.

Declared like the server's own flags (takeoff.config: each field says its default and help once,
a TAKEOFF_* variable per flag, flag over variable over default) but kept out of ServerConfig: every replica gets the same
ServerConfig, and these say how many replicas there are and where they run. This module imports
no Ray; `takeoff serve` without these flags never does.
"""
from __future__ import annotations

from dataclasses import dataclass

from takeoff.config import add_config_arguments, config_from, option


@dataclass(frozen=True)
class ReplicaConfig:
    replicas: int = option(1, "serve N replicas of the whole server behind --port on Ray Serve, "
                              "each with its own engine (needs pip install 'takeoff[ray]'); "
                              "N > 1, --ray-address or --autoscale runs on Ray; with "
                              "--autoscale, the number to start with")
    ray_address: str | None = option(None, "a running Ray cluster, e.g. 10.0.0.1:6379",
                                     shown="start a local one bound to 127.0.0.1, stopped on exit")
    num_cpus_per_replica: float = option(1.0, "CPUs each replica reserves in Ray; also its "
                                              "torch threads")
    num_gpus_per_replica: float = option(0.0, "GPUs each replica reserves in Ray; pass --device "
                                              "cuda to use it")
    autoscale: str | None = option(None, "MIN:MAX: Ray Serve scales the replicas between MIN "
                                         "and MAX on ongoing requests per replica",
                                   shown="a fixed --replicas")

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("--replicas must be at least 1")
        if self.num_cpus_per_replica < 0 or self.num_gpus_per_replica < 0:
            raise ValueError("--num-cpus-per-replica and --num-gpus-per-replica must not be "
                             "negative")
        if self.autoscale is not None:
            low, high = self.autoscale_range
            if not 1 <= low <= high:
                raise ValueError("--autoscale MIN:MAX needs 1 <= MIN <= MAX")

    @property
    def on_ray(self) -> bool:
        """Whether to serve on Ray Serve rather than in this one process."""
        return self.replicas > 1 or self.ray_address is not None or self.autoscale is not None

    @property
    def autoscale_range(self) -> tuple[int, int]:
        low, sep, high = (self.autoscale or "").partition(":")
        try:
            if not sep:
                raise ValueError
            return int(low), int(high)
        except ValueError:
            raise ValueError(f"--autoscale takes MIN:MAX, e.g. 1:4, not {self.autoscale!r}") \
                from None

    @property
    def initial_replicas(self) -> int:
        if self.autoscale is None:
            return self.replicas
        low, high = self.autoscale_range
        return min(max(self.replicas, low), high)

    @property
    def num_threads(self) -> int:
        """torch threads of one replica: the CPUs it reserved, at least one."""
        return max(1, int(self.num_cpus_per_replica))


def add_replica_arguments(parser) -> None:
    add_config_arguments(parser.add_argument_group("replicas on Ray Serve"), ReplicaConfig)


def replica_config_from(args, environ=None) -> ReplicaConfig:
    """Flags first, then TAKEOFF_* variables, then the defaults. Raises ValueError, one line."""
    return config_from(args, environ, ReplicaConfig)
