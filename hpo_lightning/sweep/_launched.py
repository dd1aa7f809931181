"""The driver side of a launched sweep: start workers, watch them, forward stops, replace
crashed workers, and say why the sweep stopped. It never claims or runs a trial itself."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

from hpo_lightning._trial import FailureKind
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.launchers import Launcher, WorkerExit, WorkerSpec
from hpo_lightning.launchers._local import describe_auto
from hpo_lightning.launchers._resources import Resources, visible_gpus
from hpo_lightning.sweep._config import SweepConfig
from hpo_lightning.sweep._progress import ProgressDisplay, summarize
from hpo_lightning.sweep._result import StopReason, settled
from hpo_lightning.sweep._runtime import worker_alive
from hpo_lightning.sweep._stop import StopToken

if TYPE_CHECKING:
    from hpo_lightning.sweep._driver import Sweep

log = logging.getLogger("hpo_lightning")


def describe_auto_workers(config: SweepConfig) -> str:
    gpus, source = visible_gpus()
    return describe_auto(Resources.from_mapping(config.resources), gpus, source)


def run_launched(
    sweep: Sweep,
    launcher: Launcher,
    n_workers: int | str,
    display: ProgressDisplay,
    token: StopToken,
    limit: int | None,
) -> StopReason:
    """Run the sweep's workers through ``launcher`` until they all exited."""
    cfg = sweep.config
    specs = [
        WorkerSpec(config=s.config, index=s.index, max_trials=limit, env=s.env, cpus=s.cpus)
        for s in launcher.plan(cfg, n_workers)
    ]
    mlflow_sync(sweep)  # create MLflow's store, experiment and parent run before the workers
    store = sweep.storage
    started = time.monotonic()
    restarts_left = cfg.max_failures + 2 * len(specs)
    bad_input = False
    stops_sent = 0
    launcher.start(specs)
    _record_launch(sweep, launcher, len(specs))
    try:
        while launcher.running():
            level = 2 if token.now else 1 if token.requested else 0
            if level > stops_sent:
                launcher.stop(now=level == 2, signum=token.signum)
                stops_sent = level
            exited = launcher.wait(0.5)
            if display.style != "quiet":
                display.update(store.get_trials(sweep.record.id))
            for ex in exited:
                if ex.exit is WorkerExit.BAD_INPUT and not bad_input:
                    bad_input = True
                    token.request(reason="bad input")
                elif ex.exit is WorkerExit.CRASHED and not token.requested:
                    _reap(sweep)
                    if restarts_left > 0 and _open(sweep, limit):
                        restarts_left -= 1
                        log.warning(
                            "worker %d ended with exit code %s; starting another",
                            ex.index,
                            ex.code,
                        )
                        launcher.start([specs[ex.index]])
    finally:
        launcher.close()  # stops any worker left (an error here) and releases the engine
    _reap(sweep)
    trials = store.get_trials(sweep.record.id)
    if display.style != "quiet":
        display.update(trials)
    if bad_input:
        first = next(
            (t.message for t in trials if t.failure is FailureKind.BAD_INPUT and t.message), None
        )
        raise UserInputError(
            (first or "a worker stopped on bad input; see its output above").splitlines()[0]
        )
    mlflow_sync(sweep)  # back-fill what a worker could not mirror (e.g. an MLflow hiccup)
    if cfg.mlflow:
        _mlflow_summary(sweep)
    if token.requested:
        return StopReason.INTERRUPTED
    return _reason(cfg, trials, limit, started)


def _record_launch(sweep: Sweep, launcher: Launcher, n: int) -> None:
    """Keep where the workers run (e.g. Slurm job ids) with the sweep, for ``status``."""
    info = launcher.describe()
    jobs = ", ".join(str(j) for j in info.get("jobs", []))
    if launcher.name == "local" or not jobs:
        return
    when = dt.datetime.now(tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    status = f"{launcher.name} job {jobs} ({n} workers) started {when}"
    try:
        sweep.storage.set_sweep_status(sweep.record.id, status)
    except Exception as exc:  # what status shows must never stop a sweep
        log.warning("could not record the launch in the store: %s", exc)


def _reap(sweep: Sweep) -> None:
    sweep.storage.fail_stale_trials(
        sweep.record.id, older_than_s=sweep.config.lost_after_s, is_alive=worker_alive
    )


def _open(sweep: Sweep, limit: int | None) -> bool:
    """Whether the sweep still has trials to run (so a crashed worker is worth replacing)."""
    return _reason(sweep.config, sweep.storage.get_trials(sweep.record.id), limit, None) is None


def _reason(cfg: SweepConfig, trials: list[Any], limit: int | None, started: float | None) -> Any:
    counts = summarize(trials, cfg.primary_mode)
    end = settled(counts, n_trials=cfg.n_trials, max_failures=cfg.max_failures, limit=limit)
    if end is not None or started is None:
        return end
    if cfg.timeout is not None and time.monotonic() - started > cfg.timeout:
        return StopReason.TIMEOUT
    return StopReason.EXHAUSTED


def mlflow_sync(sweep: Sweep) -> None:
    """Bring MLflow up to date with the store, synchronously (no thread is left running).

    Before the workers start, this creates MLflow's database, the experiment and the parent
    run once, so workers do not race to create them; after they exit, it back-fills anything
    a worker could not mirror. MLflow is a mirror: a failure here is a warning.
    """
    if not sweep.config.mlflow:
        return
    from hpo_lightning.tracking._mlflow_sync import mirror_sweep

    m = dict(sweep.config.mlflow)
    mirror_sweep(  # one warning per unreachable server for the whole process tree
        sweep.storage,
        sweep.name,
        tracking_uri=m.get("tracking_uri"),
        experiment_name=m.get("experiment") or sweep.name,
    )


def _mlflow_summary(sweep: Sweep) -> None:
    """One parent-run summary for the whole sweep, written by the driver."""
    from hpo_lightning.sweep._worker import make_mlflow_tracker

    try:
        tracker = make_mlflow_tracker(sweep.config, sweep.storage, sweep.record)
        tracker.sweep_finished(sweep.name)
        tracker.close()
    except Exception as exc:  # MLflow is a mirror; never fail the sweep for it
        from hpo_lightning._secrets import redact

        log.warning("MLflow at sweep end failed: %s", redact(str(exc)))
