"""The `takeoff` command: `serve` runs the server; `chat`, `generate`, `classify` talk to one."""
from __future__ import annotations

import argparse
import sys


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
