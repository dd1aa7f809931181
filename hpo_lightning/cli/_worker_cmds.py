"""``worker``: join an existing sweep from any machine and run its trials."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hpo_lightning.cli._hints import max_failures_hint
from hpo_lightning.cli._sweep_cmds import STOP_CONTRACT, STORAGE_ENV, _positive


def register(sub: Any) -> None:
    p = sub.add_parser(
        "worker",
        help="join a stored sweep and run trials until it is done",
        description="Join a stored sweep and run its trials until it is done.",
        epilog=STOP_CONTRACT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "sweep",
        nargs="?",
        help="name of the sweep to join, or its sweep file (uses the file's storage)",
    )
    p.add_argument("--sweep", dest="sweep_option", help="the same, as an option")
    p.add_argument(
        "--storage",
        help=f"store URL or path (default: the sweep file's store when a file is given, else "
        f"${STORAGE_ENV})",
    )
    p.add_argument(
        "--n-trials",
        type=_positive,
        help="stop this worker once the sweep has this many finished trials",
    )
    p.add_argument(
        "--max-failures",
        type=_positive,
        help="failed trials after which this worker stops (default 5)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_worker)


def _sweep_and_storage(args: argparse.Namespace) -> tuple[str, str]:
    from hpo_lightning.exceptions import ConfigError

    if args.sweep and args.sweep_option and args.sweep != args.sweep_option:
        raise ConfigError(
            f"two sweeps given ({args.sweep!r} and --sweep {args.sweep_option!r}); give one"
        )
    name = args.sweep or args.sweep_option
    if not name:
        raise ConfigError("give the sweep to join: hpo-lightning worker NAME --storage URL")
    storage = args.storage
    if name.endswith((".yaml", ".yml")) and os.path.isfile(name):
        from hpo_lightning.sweep._config import load_sweep_file

        cfg = load_sweep_file(name)
        name, storage = cfg.name, storage or cfg.storage_location()
    storage = storage or os.environ.get(STORAGE_ENV)
    if not storage:
        raise ConfigError(
            f"give --storage URL (or set ${STORAGE_ENV}, or give the sweep file) to join "
            f"sweep '{name}'"
        )
    return name, storage


def cmd_worker(args: argparse.Namespace) -> int:
    from hpo_lightning.storage import redact_url
    from hpo_lightning.sweep import StopReason, Sweep

    name, storage = _sweep_and_storage(args)
    sweep = Sweep.join(storage, name, n_workers=1, max_failures=args.max_failures)
    try:
        result = sweep.run(progress="quiet" if args.quiet else "lines", max_trials=args.n_trials)
    finally:
        sweep.close()
    if result.stopped is StopReason.JOINED:
        return 0  # another DDP rank of a trial: rank 0 reports
    if result.stopped is StopReason.INTERRUPTED:
        print(
            f"worker interrupted: sweep '{result.name}', {result.n_requeued} trials requeued; "
            f"run the worker again to resume",
            file=sys.stderr,
        )
        return result.exit_code
    if result.stopped is StopReason.MAX_FAILURES:
        print(
            max_failures_hint(result.name, result.n_failed, first_error=result.first_error),
            file=sys.stderr,
        )
        return 1
    print(
        f"worker done: sweep '{result.name}' {result.stopped}; {result.n_complete} complete, "
        f"{result.n_failed} failed in {redact_url(result.storage_url)}",
        file=sys.stderr,
    )
    return 0
