"""`takeoff triton`: load the readers, serve them through Triton until SIGTERM or SIGINT.

The first signal stops Triton and the engine cleanly (takeoff/triton/server.py); a second one
ends the process at once. Without PyTriton (or where its wheel cannot run) the command says so in
one line.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
import threading

from takeoff.triton.options import add_triton_arguments, configs_from
from takeoff.triton.platform import wheel_misfit

logger = logging.getLogger("takeoff")


def main(argv: list[str] | None = None) -> int:
    """`takeoff triton ARGS` (the `takeoff.commands` entry point): the exit status."""
    return run_triton(build_parser().parse_args(argv))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="takeoff triton",
        description="Serve a generator, classifier and/or embedder as Triton models (one per "
                    "consumer group) over Triton's HTTP and gRPC APIs, with this server's "
                    "continuous batching behind them (docs/triton.md). Needs the [triton] extra. "
                    "Every flag can also be set with the TAKEOFF_* environment variable named "
                    "after it.")
    add_triton_arguments(parser)
    return parser


def missing_requirement() -> str | None:
    """What keeps `takeoff triton` from running here, in one line; None when nothing does."""
    misfit = wheel_misfit()
    if misfit:
        return f"takeoff triton needs PyTriton, which cannot run here: {misfit}"
    missing = [name for name, module in (("nvidia-pytriton", "pytriton"),
                                         ("tritonclient", "tritonclient"))
               if importlib.util.find_spec(module) is None]
    if missing:
        return f"{' and '.join(missing)} not installed: pip install -e '.[triton]'"
    return None


def run_triton(args: argparse.Namespace) -> int:
    missing = missing_requirement()
    if missing:
        print(f"takeoff triton: error: {missing}", file=sys.stderr)
        return 2
    try:
        config, options = configs_from(vars(args))
    except ValueError as exc:
        print(f"takeoff triton: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), format="%(levelname)s:     %(message)s")
    if config.log_level != "debug":  # PyTriton logs every model's endpoints at INFO
        logging.getLogger("pytriton").setLevel(logging.WARNING)
    from kernels.loader import ModelLoadError
    from takeoff.engine.readers import load_readers
    from takeoff.triton.server import TritonDeployment, check_ports_free

    try:
        check_ports_free(options)  # before the models load: a taken port is found at once
        deployment = TritonDeployment(config, options, load_readers(config))
    except (ModelLoadError, ValueError, OSError) as exc:
        print(f"takeoff triton: error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    _on_exit_signals(stop)
    try:
        deployment.start()
        stopped = deployment.wait(stop)
    except Exception as exc:  # noqa: BLE001 - Triton's own log above says more
        print(f"takeoff triton: error: Triton did not start: {exc}", file=sys.stderr)
        stopped = False
    finally:
        logger.info("stopping: running requests get up to %.0f s", config.drain_timeout)
        deployment.stop()
    return 0 if stopped else 1


def _on_exit_signals(stop: threading.Event) -> None:
    def handle(signum, frame) -> None:
        if stop.is_set():
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)


if __name__ == "__main__":
    sys.exit(main())
