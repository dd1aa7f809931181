"""The ``hpo-lightning`` command line (also ``python -m hpo_lightning``).

Each group of subcommands lives in its own module with ``register(subparsers)``; a handler
gets the parsed args and returns an exit code. Exit codes: 0 ok, 1 the sweep failed,
2 bad input (one line on stderr saying what is wrong and how to fix it).
"""

from hpo_lightning.cli._app import main

__all__ = ["main"]
