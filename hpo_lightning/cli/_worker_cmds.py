"""``worker``: join an existing sweep from any machine and run its trials."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hpo_lightning.cli._sweep_cmds import STOP_CONTRACT, STORAGE_ENV, _positive


def register(sub: Any) -> None:
    p = sub.add_parser(
        "worker",
        help="join a stored sweep and run trials until it is done",
        description="Join a stored sweep and run its trials until it is done.",
        epilog=STOP_CONTRACT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--storage", help=f"store URL or path (default: ${STORAGE_ENV})")
    p.add_argument("--sweep", required=True, help="name of the sweep to join")
    p.add_argument(
        "--n-trials",
        type=_positive,
        help="stop this worker once the sweep has this many finished trials",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    from hpo_lightning.exceptions import ConfigError
    from hpo_lightning.storage import redact_url
    from hpo_lightning.sweep import StopReason, Sweep

    storage = args.storage or os.environ.get(STORAGE_ENV)
    if not storage:
        raise ConfigError(f"give --storage URL (or set ${STORAGE_ENV}) to join a sweep")
    sweep = Sweep.join(storage, args.sweep, n_workers=1)
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
    print(
        f"worker done: sweep '{result.name}' {result.stopped}; {result.n_complete} complete, "
        f"{result.n_failed} failed in {redact_url(result.storage_url)}",
        file=sys.stderr,
    )
    return 1 if result.stopped == "max_failures" else 0
