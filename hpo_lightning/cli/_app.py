"""Argument parsing and error-to-exit-code translation for the command line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from hpo_lightning.exceptions import HPOError, UserInputError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# a reader that closed the pipe early (``export ... | head``): 128 + SIGPIPE, as a shell
# reports for `cat` or `seq` in the same place
EXIT_BROKEN_PIPE = 141

DESCRIPTION = """\
Hyper-parameter sweeps for PyTorch Lightning. Run a sweep from a YAML file, read its results
from the store (SQLite file or PostgreSQL), join it from other machines, mirror it to MLflow.

  hpo-lightning sweep digits_sweep.yaml      run (or resume) a sweep
  hpo-lightning status digits_sweep.yaml     its trials (a sweep file or a name)
  hpo-lightning best digits                  best params as JSON
  hpo-lightning COMMAND --help               options of a command
"""
EPILOG = """\
Exit codes: 0 ok; 1 the sweep stopped at max_failures (or a delete was not confirmed);
2 bad input (one line on stderr says what to fix); 130 / 143 stopped by Ctrl-C / SIGTERM
(how a stop works: `hpo-lightning sweep --help`); 141 the reader of stdout closed the pipe
(e.g. `| head`), nothing is printed then.
"""

# modules that contribute subcommands through ``register(subparsers)``
COMMAND_MODULES = [
    "hpo_lightning.cli._sweep_cmds",
    "hpo_lightning.cli._worker_cmds",
    "hpo_lightning.cli._delete_cmds",
    "hpo_lightning.cli._mlflow_cmds",
    "hpo_lightning.cli._serve_cmds",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own errors are bad input too: one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hpo_lightning")
    except PackageNotFoundError:  # a source checkout that was not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hpo-lightning",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hpo-lightning {_version()}")
    sub = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", parser_class=_Parser
    )
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
    if args.command is None:  # plain `hpo-lightning`: what it can do, as bad input
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
        return code
    except UserInputError as exc:
        print(f"hpo-lightning: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except HPOError as exc:
        print(f"hpo-lightning: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("hpo-lightning: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what is still buffered
    does not raise BrokenPipeError again ("Exception ignored ... BrokenPipeError")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass
