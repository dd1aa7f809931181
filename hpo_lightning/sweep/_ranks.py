"""DDP trials inside a sweep: the ranks Lightning re-launches join rank 0's trial.

With ``Trainer(strategy="ddp")`` Lightning starts ranks 1..N-1 by running the same command again
(``hpo-lightning sweep FILE``, or the user's script). Rank 0 puts the trial it runs into the
environment before calling the objective; a process that starts with that trial in its
environment and a non-zero rank runs exactly that trial (same params, same trial id), writes
nothing unless it crashes, and ends. Rank 0's environment is restored after each trial, and its
process group destroyed, so the next trial's Trainer starts fresh ranks.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

TRIAL_ENV = "HPO_LIGHTNING_TRIAL"
_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", TRIAL_ENV)


@dataclass(frozen=True)
class JoinedTrial:
    """The trial of rank 0 that this process runs as another rank."""

    sweep: str
    trial_id: int
    number: int
    params: Mapping[str, Any]
    rank: int


def process_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's rank as the launcher set it (0 when nothing says otherwise)."""
    env = os.environ if environ is None else environ
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        raw = env.get(key)
        if raw and raw.isdigit() and int(raw) > 0:
            return int(raw)
    return 0


def joined_trial(sweep: str, environ: Mapping[str, str] | None = None) -> JoinedTrial | None:
    """Rank 0's trial of ``sweep`` when this process is another rank of it, else None."""
    env = os.environ if environ is None else environ
    raw = env.get(TRIAL_ENV)
    rank = process_rank(env)
    if not raw or rank == 0:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if data.get("sweep") != sweep:
        return None
    return JoinedTrial(
        sweep=sweep,
        trial_id=int(data["id"]),
        number=int(data["number"]),
        params=dict(data["params"]),
        rank=rank,
    )


@contextlib.contextmanager
def rank_zero_trial(
    sweep: str, trial_id: int, number: int, params: Mapping[str, Any]
) -> Iterator[None]:
    """Publish the trial to ranks started during the block; restore the DDP state after it."""
    saved = {k: os.environ.get(k) for k in _DDP_ENV}
    os.environ[TRIAL_ENV] = json.dumps(
        {"sweep": sweep, "id": trial_id, "number": number, "params": dict(params)}
    )
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        destroy_process_group()


def destroy_process_group() -> None:
    """End the trial's process group, so the next trial's Trainer makes its own."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    dist = getattr(torch, "distributed", None)
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # a broken group (a crashed rank) is gone anyway
        return
