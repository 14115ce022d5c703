"""The `takeoff` command: `serve` runs the server; `triton` serves the same models through
Triton; `chat`, `generate`, `classify` talk to a server; `bench` runs the load benchmark
(benchmarks.load), passing its arguments on."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from clients.cli import add_client_commands
    from takeoff.serve import add_serve_command
    from takeoff.triton.command import add_triton_command

    parser = argparse.ArgumentParser(
        prog="takeoff",
        description="Serve small seq2seq and classifier models with continuous batching, "
                    "and talk to a running server.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_command(commands)
    add_triton_command(commands)
    add_client_commands(commands)
    add_bench_command(commands)
    return parser


def add_bench_command(commands) -> None:
    """Listed in `takeoff --help`; `main` hands its arguments over before parsing."""
    commands.add_parser("bench", add_help=False,
                        help="serving benchmark under load (python -m benchmarks.load)")


def run_bench(arguments: list[str]) -> int:
    """`takeoff bench ARGS` is `python -m benchmarks.load ARGS`: every argument, --help too,
    goes to the benchmark untouched (argparse would claim the options for itself)."""
    from benchmarks.load import main as load_main

    load_main(arguments)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        return run_bench(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
