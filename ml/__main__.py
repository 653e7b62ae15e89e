"""``python -m ml COMMAND ...``: command-line tools of the framework-free numerics.

Each command lives in its own module that exposes ``register(subparsers)``; it adds its parser and
sets ``handler`` (``argparse.Namespace -> int`` exit status) as a default. To add a command, append
its module to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Modules providing ``register(subparsers)``, in the order they appear in ``--help``.
COMMANDS: tuple[str, ...] = ("ml.cli.aggregate", "ml.cli.simulate")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit status."""
    args = build_parser().parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
