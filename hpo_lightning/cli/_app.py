"""Argument parsing and error-to-exit-code translation for the command line."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hpo_lightning.exceptions import HPOError, UserInputError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

# modules that contribute subcommands through ``register(subparsers)``
COMMAND_MODULES = [
    "hpo_lightning.cli._sweep_cmds",
    "hpo_lightning.cli._worker_cmds",
    "hpo_lightning.cli._mlflow_cmds",
    "hpo_lightning.cli._serve_cmds",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own errors are bad input too: one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hpo-lightning", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that group is not part of this build
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserInputError as exc:
        print(f"hpo-lightning: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except HPOError as exc:
        print(f"hpo-lightning: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("hpo-lightning: interrupted", file=sys.stderr)
        return 130
