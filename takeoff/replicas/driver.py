"""`takeoff serve --replicas N`: N copies of the server on Ray Serve, behind one port.

This process is the Ray driver: it starts a local Ray cluster bound to 127.0.0.1 (or joins the one
at --ray-address), starts Serve's HTTP proxy on --host/--port, deploys the replicas
(takeoff.replicas.replica) and waits. Ray's router sends each request to the replica with the fewest
ongoing requests (of two picked at random), restarts a replica that dies, and with --autoscale
scales between MIN and MAX on ongoing requests.

On SIGTERM/SIGINT the replicas drain as one server does (new requests and /ready get 503, running
ones get up to --drain-timeout to finish), then the application is deleted and, for a local
cluster, Ray is shut down. A second signal exits at once.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from takeoff.config import ServerConfig
from takeoff.replicas.options import ReplicaConfig

logger = logging.getLogger("takeoff")
LOCAL_NODE_IP = "127.0.0.1"
PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
DRAIN_CALL_TIMEOUT_S = 5.0
DRAIN_POLL_S = 0.2
SHUTDOWN_MARGIN_S = 30.0  # beyond --drain-timeout, for Serve and Ray to stop their processes


class StopServing(Exception):
    """Raised in the main thread by the first SIGTERM/SIGINT."""


def run_replicas(config: ServerConfig, replicas: ReplicaConfig) -> int:
    if replicas.ray_address is None:
        # Ray turns 127.0.0.1 into the machine's outward address unless told, before it is
        # imported, that the cluster is this one machine; then every Ray process (and each one
        # it starts, which inherits this) listens on and talks to 127.0.0.1 only.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray  # noqa: F401
    except ImportError:
        print("takeoff serve: error: --replicas, --ray-address and --autoscale need Ray: "
              "pip install 'takeoff[ray]'", file=sys.stderr)
        return 2
    try:
        _start_ray(replicas, config.log_level)
        _on_exit_signals(_stop_serving)  # after ray.init, which installs its own handlers
        _deploy(config, replicas)
        logger.info("serving %s replica(s) on http://%s:%d", _count(replicas), config.host,
                    config.port)
        while True:
            time.sleep(3600)
    except StopServing:
        logger.info("stopping: replicas finish their running requests (up to %.0f s)",
                    config.drain_timeout)
        return 0
    except DeployError as exc:
        print(f"takeoff serve: error: the replicas did not start (the log above has why): "
              f"{exc}", file=sys.stderr)
        return 1
    finally:
        _on_exit_signals(signal.SIG_DFL)  # a second signal ends this process at once
        _shut_down(config, replicas)


class DeployError(Exception):
    pass


def _stop_serving(signum, frame) -> None:
    raise StopServing()


def _on_exit_signals(handler) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def _count(replicas: ReplicaConfig) -> str:
    if replicas.autoscale is None:
        return str(replicas.replicas)
    low, high = replicas.autoscale_range
    return f"{replicas.initial_replicas} (autoscaled {low}-{high})"


def _start_ray(replicas: ReplicaConfig, log_level: str) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local cluster reports nowhere
    options = dict(logging_level=log_level.upper(), configure_logging=True)
    if replicas.ray_address is not None:
        ray.init(address=replicas.ray_address, **options)
        return
    # Ray CPUs are reservations: on a local cluster, reserve what was asked for even if the
    # machine has fewer cores (the replicas then share them).
    max_replicas = replicas.autoscale_range[1] if replicas.autoscale else replicas.replicas
    num_cpus = max(os.cpu_count() or 1, max_replicas * replicas.num_cpus_per_replica)
    ray.init(_node_ip_address=LOCAL_NODE_IP, include_dashboard=False, num_cpus=num_cpus,
             **options)


def _deploy(config: ServerConfig, replicas: ReplicaConfig) -> None:
    from ray import serve

    from takeoff.replicas.replica import APP_NAME, DEPLOYMENT_NAME, TakeoffReplica
    from takeoff.replicas.proxy import IMPORT_PATH

    # The proxies inherit the controller's environment: this loads takeoff.replicas.proxy there.
    logging_config = {"log_level": config.log_level.upper(),
                      "enable_access_log": config.log_level == "debug"}
    serve.start(http_options={"host": config.host, "port": config.port},
                controller_options={"runtime_env": {"env_vars": {PROXY_CALLBACK_ENV: IMPORT_PATH}}},
                logging_config=logging_config)
    deployment = serve.deployment(name=DEPLOYMENT_NAME, **_deployment_options(config, replicas))
    try:
        serve.run(deployment(TakeoffReplica).bind(config), name=APP_NAME, route_prefix="/",
                  logging_config=logging_config)
    except RuntimeError as exc:
        raise DeployError(str(exc).strip().splitlines()[0]) from exc


def _deployment_options(config: ServerConfig, replicas: ReplicaConfig) -> dict:
    env_vars = {"OMP_NUM_THREADS": str(replicas.num_threads)}
    options = dict(
        ray_actor_options={"num_cpus": replicas.num_cpus_per_replica,
                           "num_gpus": replicas.num_gpus_per_replica,
                           "runtime_env": {"env_vars": env_vars}},
        # A replica is sent up to twice what its engine holds (running + queued): once all are
        # full, their engines answer 429 with Retry-After at once, so Ray's proxy (which would
        # hold a request until some replica has room) does not queue for long.
        max_ongoing_requests=2 * (config.max_num_seqs + config.max_queue),
        graceful_shutdown_timeout_s=config.drain_timeout)
    if replicas.autoscale is None:
        options["num_replicas"] = replicas.replicas
    else:
        low, high = replicas.autoscale_range
        # Add a replica once those there average a full set of KV slots in use.
        options["autoscaling_config"] = {"min_replicas": low, "max_replicas": high,
                                         "initial_replicas": replicas.initial_replicas,
                                         "target_ongoing_requests": config.max_num_seqs}
    return options


def _shut_down(config: ServerConfig, replicas: ReplicaConfig) -> None:
    """Drain, then stop the replicas (Serve waits for their running requests), then Ray."""
    import ray
    from ray import serve

    from takeoff.replicas.replica import APP_NAME

    if not ray.is_initialized():
        return
    # Ray's processes die with this one (fate sharing on Linux), so exiting is the way out when
    # a shutdown hangs, e.g. on a raylet that a SIGTERM to the whole process group has killed.
    watchdog = threading.Timer(config.drain_timeout + SHUTDOWN_MARGIN_S, _exit_now)
    watchdog.daemon = True
    watchdog.start()
    try:
        _drain_replicas(config.drain_timeout)
        if replicas.ray_address is None:
            serve.shutdown()
        else:  # the cluster is someone else's: take our application off it, leave the rest
            serve.delete(APP_NAME)
    finally:
        ray.shutdown()
        watchdog.cancel()


def _drain_replicas(drain_timeout: float) -> None:
    """Like one server on SIGTERM: new requests and /ready get 503 while the running ones
    finish, for up to drain_timeout (Serve's own shutdown would cut off open streams)."""
    from ray import serve

    from takeoff.replicas.replica import APP_NAME

    deadline = time.monotonic() + drain_timeout
    try:
        handle = serve.get_app_handle(APP_NAME)
    except Exception:  # nothing deployed (it failed to start): nothing to drain
        return
    while time.monotonic() < deadline:
        try:
            ongoing = handle.broadcast("drain").results(timeout_s=DRAIN_CALL_TIMEOUT_S,
                                                        return_exceptions=True)
        except TimeoutError:
            ongoing = []
        if sum(n for n in ongoing if isinstance(n, int)) == 0:
            return
        time.sleep(DRAIN_POLL_S)
    logger.warning("drain timeout: stopping the replicas with requests still running")


def _exit_now() -> None:
    logger.error("the replicas did not stop in time; exiting")
    os._exit(1)
