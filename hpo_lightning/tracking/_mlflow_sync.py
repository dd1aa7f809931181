"""Back-fill MLflow from the store: what ``hpo-lightning mlflow-sync`` does.

Idempotent: runs are found by their tags before any is created, a metric step already in a
run's history is not logged again, and a child run's final state is written only when it
differs from the store's. Running it twice leaves MLflow as the first run left it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from hpo_lightning._objectives import Objectives, objectives_of
from hpo_lightning._secrets import redact
from hpo_lightning._trial import Mode, is_better
from hpo_lightning.exceptions import HPOError, ServiceUnavailableError
from hpo_lightning.plots._common import scored
from hpo_lightning.storage import Storage, SweepRecord, TrialRecord
from hpo_lightning.tracking._mlflow import log_sweep_artifacts
from hpo_lightning.tracking._mlflow_runs import STATE, STATUS, MlflowRuns, mlflow_name
from hpo_lightning.tracking._reach import first_report, was_reported


@dataclass(frozen=True)
class SyncReport:
    """What a sync wrote: runs created, metric values logged, trials whose state was set."""

    parent_run_id: str
    runs_created: int
    metrics_logged: int
    states_set: int
    trials: int


def sync_sweep(
    storage: Storage,
    sweep_name: str,
    *,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    artifacts: bool = True,
) -> SyncReport:
    """Make MLflow hold every stored trial of the sweep (runs, params, metrics, states, best).

    Args:
        storage: the store of record.
        sweep_name: the sweep to mirror.
        tracking_uri: MLflow tracking URI (default: MLflow's).
        experiment_name: MLflow experiment (default: the sweep's name).
        artifacts: also (re)log the trials table and plots on the parent run.

    Raises:
        ServiceUnavailableError: an ``http(s)`` server does not answer (in seconds).
        HPOError: MLflow failed during the sync (the message has no password).

    Example:
        >>> sync_sweep(open_storage("sweeps.db"), "demo", tracking_uri="sqlite:///mlflow.db")
        ... # doctest: +SKIP
    """
    sweep = storage.get_sweep(sweep_name)
    try:
        return _sync(storage, sweep, tracking_uri, experiment_name or sweep_name, artifacts)
    except ServiceUnavailableError:
        # the caller reports this error; trackers of this process (and of workers it forks
        # next) need not warn about the same outage again
        first_report(tracking_uri)
        raise
    except HPOError:
        raise
    except Exception as exc:  # MLflow's own errors quote the URI, password included
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise HPOError(
            f"MLflow at {redact(tracking_uri or '(default)')} failed during the sync: "
            f"{redact(lines[0])[:300]}; run `hpo-lightning mlflow-sync` again once it answers "
            "(it is idempotent)"
        ) from None


def mirror_sweep(
    storage: Storage, sweep_name: str, *, tracking_uri: str | None, experiment_name: str | None
) -> SyncReport | None:
    """:func:`sync_sweep` for a running sweep: MLflow is a mirror, so a failure is ONE
    warning per URI in this process tree (a worker forked later stays quiet) and None.

    A sweep driver calls this before its workers fork (to create the experiment and parent
    run once) and after they exit (to back-fill what a worker could not send).
    """
    quiet = was_reported(tracking_uri)
    try:
        return sync_sweep(
            storage,
            sweep_name,
            tracking_uri=tracking_uri,
            experiment_name=experiment_name,
            artifacts=False,
        )
    except Exception as exc:
        first_report(tracking_uri)
        if not quiet:
            logging.getLogger("hpo_lightning").warning(
                "MLflow could not be brought up to date (the sweep goes on; run "
                "`hpo-lightning mlflow-sync %s` later): %s",
                sweep_name,
                redact(str(exc)),
            )
        return None


def _sync(
    storage: Storage,
    sweep: SweepRecord,
    tracking_uri: str | None,
    experiment_name: str,
    artifacts: bool,
) -> SyncReport:
    sweep_name = sweep.name
    runs = MlflowRuns(tracking_uri, experiment_name)
    created = 0 if runs.find_parent(sweep_name) is not None else 1
    parent = runs.parent(sweep_name, sweep.definition)
    trials = storage.get_trials(sweep.id)
    report = mirror_trials(runs, storage, sweep, parent, trials)
    created += report.runs_created
    metrics, states = report.metrics_logged, report.states_set
    if artifacts:
        monitor = sweep.definition.get("monitor")
        log_sweep_artifacts(
            runs,
            parent,
            trials,
            sweep.mode,
            monitor=monitor,
            sweep=sweep_name,
            objectives=objectives_of(sweep.definition, sweep.mode),
        )
    finished = bool(trials) and all(t.state.is_finished for t in trials)
    if finished and runs.client.get_run(parent).info.status != "FINISHED":
        runs.client.set_terminated(parent, "FINISHED")
    return SyncReport(parent, created, metrics, states, len(trials))


def mirror_trials(
    runs: MlflowRuns,
    storage: Storage,
    sweep: SweepRecord,
    parent: str,
    trials: list[TrialRecord] | None = None,
) -> SyncReport:
    """Give every stored trial of ``sweep`` its child run under ``parent`` (params, metrics by
    epoch, final state) and the parent its best trial; what exists already is kept.

    Also used by MLflowTracker when it creates the parent run of a sweep that already has
    trials (``mlflow:`` added to a sweep run without it), so the parent is not left empty.
    """
    trials = storage.get_trials(sweep.id) if trials is None else trials
    known = set(runs.children(parent))
    created = metrics = states = 0
    for t in trials:
        child = runs.child(parent, sweep.name, t.number, t.params)
        created += t.number not in known
        metrics += _backfill_metrics(runs, storage, child, t)
        states += _backfill_state(runs, child, t)
    best = _best(trials, sweep.mode)
    if best is not None and best.value is not None:
        child = runs.children(parent)[best.number]
        runs.update_best(parent, child, best.number, best.value, sweep.mode)
    tag_front(runs, parent, sweep.name, trials, objectives_of(sweep.definition, sweep.mode))
    return SyncReport(parent, created, metrics, states, len(trials))


def tag_front(
    runs: MlflowRuns, parent: str, sweep: str, trials: list[TrialRecord], objectives: Objectives
) -> None:
    """A multi-objective sweep: tag its Pareto front's trial runs ``pareto_front=true``."""
    if not objectives.multi:
        return
    from hpo_lightning._front import pareto_trials

    runs.update_front(
        parent, sweep, {t.number: t.params for t in pareto_trials(trials, objectives)}
    )


def _backfill_metrics(runs: MlflowRuns, storage: Storage, child: str, t: TrialRecord) -> int:
    stored = storage.get_metrics(t.id)
    keys = sorted({k for row in stored.values() for k in row})
    missing: dict[int, dict[str, float]] = {}
    for key in keys:
        have = runs.metric_steps(child, mlflow_name(key))  # as log_epochs names it
        for epoch, row in stored.items():
            if key in row and epoch not in have:
                missing.setdefault(epoch, {})[key] = row[key]
    stamp = int((t.finished_at or t.created_at or time.time()) * 1000)
    return runs.log_epochs(child, missing, stamp) if missing else 0


def _backfill_state(runs: MlflowRuns, child: str, t: TrialRecord) -> int:
    if not t.state.is_finished:
        return 0
    run = runs.client.get_run(child)
    if run.info.status == STATUS[t.state] and run.data.tags.get(STATE) == t.state.value:
        return 0
    runs.finish_child(child, t.state, t.value, message=t.message, epochs=t.epochs)
    return 1


def _best(trials: list[TrialRecord], mode: Mode) -> TrialRecord | None:
    best: TrialRecord | None = None
    for t in scored(trials):  # complete trials with a finite value
        if is_better(t.value, best.value if best else None, mode):
            best = t
    return best
