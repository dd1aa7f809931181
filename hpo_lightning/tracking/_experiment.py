"""ExperimentTracker: the seed's SQLite experiment log, grown into sweeps, trials and epochs."""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpo_lightning._trial import Mode, Trial, TrialState, check_mode, to_metric
from hpo_lightning.events import EpochEnd, TrainingEvent, TrainingFinish
from hpo_lightning.storage import Storage, SweepRecord, TrialRecord, open_storage
from hpo_lightning.tracking._base import Tracker


@dataclass(frozen=True)
class ExperimentRecord:
    """One finished evaluation, as the seed's ``all_records`` returned it (plus sweep/state)."""

    id: int
    timestamp: dt.datetime
    tuner_name: str
    params: Mapping[str, Any]
    metric: float
    sweep: str = "default"
    state: TrialState = TrialState.COMPLETE


class ExperimentTracker(Tracker):
    """Records trials, per-epoch metrics and states in the store (SQLite by default).

    It is the store of record for the Lightning callback: trials are created by
    :meth:`start_trial` (or by the sweep driver), epoch metrics arrive as ``EpochEnd`` events
    and the final state as ``TrainingFinish``.

    Args:
        location: SQLite file path, ``sqlite:///...`` or ``postgresql://...`` URL, or a Storage.
        sweep: the sweep that ``start_trial`` and ``log_record`` write to.

    Example:
        >>> tracker = ExperimentTracker(":memory:")
        >>> rid = tracker.log_record("GridSearchTuner", {"x": 42.0}, 0.5)
        >>> [r.metric for r in tracker.all_records()]
        [0.5]
    """

    storage: Storage  # (never None here)

    def __init__(
        self, location: str | os.PathLike[str] | Storage, *, sweep: str = "default"
    ) -> None:
        self.storage = open_storage(location)
        self.sweep = sweep
        self._sweeps: dict[str, SweepRecord] = {}

    # --- the seed's API --------------------------------------------------------------
    def log_record(self, tuner_name: str, params: Mapping[str, Any], metric: Any) -> int:
        """Persist one finished evaluation; return its id. NaN/inf is stored as FAILED."""
        value = to_metric(metric)
        sweep = self._sweep_record(self.sweep, "min")
        with self.storage.claim(sweep.id) as claim:
            rec = claim.add_trial(dict(params), tuner=tuner_name)
        state = TrialState.COMPLETE if math.isfinite(value) else TrialState.FAILED
        self.storage.finish_trial(
            rec.id, state, value, message=None if math.isfinite(value) else f"metric was {value}"
        )
        return rec.id

    def all_records(self) -> list[ExperimentRecord]:
        """Every finished trial with a value (complete or pruned), in every sweep, by id."""
        out: list[ExperimentRecord] = []
        for sweep in self.storage.list_sweeps():
            for t in self.storage.get_trials(sweep.id):
                if t.value is None or t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
                    continue
                out.append(
                    ExperimentRecord(
                        id=t.id,
                        timestamp=dt.datetime.fromtimestamp(
                            t.finished_at or t.created_at, tz=dt.timezone.utc
                        ),
                        tuner_name=t.tuner or "",
                        params=t.params,
                        metric=t.value,
                        sweep=sweep.name,
                        state=t.state,
                    )
                )
        return sorted(out, key=lambda r: r.id)

    # --- trials ---------------------------------------------------------------------------
    def _sweep_record(self, name: str, mode: Mode) -> SweepRecord:
        rec = self._sweeps.get(name)
        if rec is None:
            rec = self.storage.create_sweep(name, {"created_by": "ExperimentTracker"}, mode=mode)
            self._sweeps[name] = rec
        return rec

    def start_trial(
        self, params: Mapping[str, Any], *, mode: Mode = "min", tuner: str | None = None
    ) -> Trial:
        """Create a RUNNING trial in this tracker's sweep and return its identity."""
        sweep = self._sweep_record(self.sweep, check_mode(mode))
        with self.storage.claim(sweep.id) as claim:
            rec = claim.add_trial(dict(params), tuner=tuner)
        return Trial(sweep=self.sweep, number=rec.number, params=dict(params), id=rec.id)

    def trials(self, sweep: str | None = None) -> list[TrialRecord]:
        """The stored trials of a sweep (default: this tracker's)."""
        rec = self.storage.get_sweep(sweep or self.sweep)
        return self.storage.get_trials(rec.id)

    # --- observer ---------------------------------------------------------------------------
    def on_event(self, event: TrainingEvent) -> None:
        trial_id = event.trial.id
        if trial_id is None:
            return
        if isinstance(event, EpochEnd):
            self.storage.log_metrics(trial_id, event.epoch, event.metrics)
        elif isinstance(event, TrainingFinish):
            self.storage.finish_trial(
                trial_id,
                event.state,
                event.best_metric,
                epochs=event.epochs,
                message=event.message,
                failure=event.failure,
                objective_values=event.objective_values,
                violation=event.violation,
            )

    def close(self) -> None:
        self.storage.close()

    def __repr__(self) -> str:
        return f"ExperimentTracker({self.storage.url!r}, sweep={self.sweep!r})"
