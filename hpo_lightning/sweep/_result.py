"""How a sweep run ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpo_lightning._trial import TrialState
from hpo_lightning.storage import TrialRecord
from hpo_lightning.sweep._config import SweepConfig
from hpo_lightning.sweep._progress import summarize
from hpo_lightning.sweep._runtime import INTERRUPTED, is_retriable


@dataclass(frozen=True)
class SweepResult:
    """How a sweep run ended. ``stopped`` is done, exhausted, timeout, max_failures or
    interrupted; ``first_error`` is the message of the first failed trial."""

    name: str
    stopped: str
    n_complete: int
    n_pruned: int
    n_failed: int
    best: TrialRecord | None
    first_error: str | None
    storage_url: str

    @property
    def ok(self) -> bool:
        return self.stopped not in ("max_failures", "interrupted")

    @property
    def best_params(self) -> dict[str, Any] | None:
        return dict(self.best.params) if self.best else None


def stop_reason(cfg: SweepConfig, trials: list[TrialRecord]) -> str:
    """done, exhausted, max_failures or interrupted, from the stored trials."""
    s = summarize(trials, cfg.mode)
    failures = sum(1 for t in trials if t.state is TrialState.FAILED and not is_retriable(t))
    if failures >= cfg.max_failures:
        return "max_failures"
    if any(
        t.state is TrialState.FAILED
        and (t.message or "").startswith(INTERRUPTED)
        and not any(o.attrs.get("retry_of") == t.number for o in trials)
        for t in trials
    ):
        return "interrupted"
    return "done" if s["done"] >= cfg.n_trials else "exhausted"
