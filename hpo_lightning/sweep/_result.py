"""How a sweep run ended, as values."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpo_lightning._trial import TrialState
from hpo_lightning.storage import TrialRecord


class StopReason(str, enum.Enum):
    """Why a sweep run (or one worker's loop) stopped."""

    DONE = "done"  # n_trials trials finished
    LIMIT = "limit"  # the run's max_trials was reached before n_trials
    EXHAUSTED = "exhausted"  # the tuner has nothing left (a finished grid)
    TIMEOUT = "timeout"  # no new trial after `timeout` seconds
    MAX_FAILURES = "max_failures"  # max_failures trials failed
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM or a stop request; running trials requeued
    JOINED = "joined"  # this process ran rank 0's trial as another DDP rank

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SweepResult:
    """How a sweep run ended. ``stopped`` is a StopReason; ``first_error`` is the message of the
    first failed trial; ``exit_code`` is what the command line exits with."""

    name: str
    stopped: StopReason
    n_complete: int
    n_pruned: int
    n_failed: int
    best: TrialRecord | None
    first_error: str | None
    storage_url: str
    n_requeued: int = 0
    exit_code: int = 0
    # several objectives: the Pareto front, feasible first (see hpo_lightning._front); `best`
    # is then the best trial by the first objective
    pareto: tuple[TrialRecord, ...] = ()

    @property
    def ok(self) -> bool:
        return self.stopped not in (StopReason.MAX_FAILURES, StopReason.INTERRUPTED)

    @property
    def best_params(self) -> dict[str, Any] | None:
        return dict(self.best.params) if self.best else None


def failures(trials: list[TrialRecord]) -> int:
    """Trials that count towards max_failures (FAILED; requeued trials never do)."""
    return sum(1 for t in trials if t.state is TrialState.FAILED)


def settled(
    counts: Mapping[str, Any], *, n_trials: int, max_failures: int, limit: int | None = None
) -> StopReason | None:
    """Whether the stored trials (their ``summarize`` counts) end the sweep, or a run limited
    to ``limit`` finished trials: MAX_FAILURES, DONE or LIMIT; None while trials remain."""
    if counts["failed"] >= max_failures:
        return StopReason.MAX_FAILURES
    target = n_trials if limit is None else min(n_trials, limit)
    if counts["done"] >= target:
        return StopReason.DONE if target >= n_trials else StopReason.LIMIT
    return None


REQUEUED = frozenset(s for s in TrialState if s.requeued)


def pending_requeue(trials: list[TrialRecord]) -> list[TrialRecord]:
    """Requeued trials (interrupted, lost) whose params have not been run again yet."""
    requeued = [t for t in trials if t.state in REQUEUED]
    if not requeued:
        return []
    retried = {t.attrs.get("retry_of") for t in trials}
    return [t for t in requeued if t.number not in retried]
