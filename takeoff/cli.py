"""The `takeoff` command: `serve` runs the server; `chat`, `generate`, `classify` talk to one;
commands registered under the `takeoff.commands` entry-point group (pyproject.toml: `bench` is
benchmarks.load, `triton` is takeoff.triton.command) get their arguments untouched, so the server
never imports what they need."""
from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

COMMANDS_GROUP = "takeoff.commands"


def build_parser() -> argparse.ArgumentParser:
    from clients.cli import add_client_commands
    from takeoff.serve import add_serve_command

    parser = argparse.ArgumentParser(
        prog="takeoff",
        description="Serve small seq2seq and classifier models with continuous batching, "
                    "and talk to a running server.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_command(commands)
    add_client_commands(commands)
    for command in entry_points(group=COMMANDS_GROUP):
        # Listed in `takeoff --help`; `main` hands them their arguments before parsing.
        commands.add_parser(command.name, add_help=False,
                            help=f"runs {command.value.partition(':')[0]} with the arguments given")
    return parser


def run_command(name: str, arguments: list[str]) -> int | None:
    """`takeoff NAME ARGS` for a registered command: every argument, --help too, goes to its
    `main(ARGS)` untouched (argparse would claim the options for itself); its exit status is
    what `main` returns when that is an int (`triton`), else 0 (`bench` returns its report).
    None when NAME is not one."""
    for command in entry_points(group=COMMANDS_GROUP, name=name):
        status = command.load()(arguments)
        return status if isinstance(status, int) else 0
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and (status := run_command(argv[0], argv[1:])) is not None:
        return status
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
