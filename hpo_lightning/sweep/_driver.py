"""The Sweep façade: a sweep's definition and record, and ``run`` / ``for trial in sweep``.

A Sweep stores its definition (or checks it against the stored one) and starts workers: one in
this process (:class:`~hpo_lightning.sweep.Worker`), or several through a launcher
(:mod:`hpo_lightning.launchers`). The workers do everything else: claim, run, record.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import fields, replace
from typing import Any

from hpo_lightning._front import pareto_trials
from hpo_lightning._names import did_you_mean
from hpo_lightning._trial import Trial, TrialState
from hpo_lightning.events import EventBus
from hpo_lightning.exceptions import ConfigError
from hpo_lightning.launchers import LocalLauncher, make_launcher
from hpo_lightning.storage import Storage, SweepRecord, TrialRecord, open_storage, redact_url
from hpo_lightning.sweep._config import (
    SweepConfig,
    check_same_definition,
    definition_diff,
    load_sweep_file,
)
from hpo_lightning.sweep._launched import describe_auto_workers, run_launched
from hpo_lightning.sweep._objective import resolve_objective
from hpo_lightning.sweep._progress import ProgressDisplay, summarize
from hpo_lightning.sweep._ranks import JoinedTrial, joined_trial
from hpo_lightning.sweep._result import StopReason, SweepResult, pending_requeue
from hpo_lightning.sweep._run import exit_code
from hpo_lightning.sweep._runtime import TrialHandle
from hpo_lightning.sweep._stop import StopToken, stop_on_signals
from hpo_lightning.sweep._worker import Worker, make_sweep_scheduler
from hpo_lightning.tuners._base import new_seed

log = logging.getLogger("hpo_lightning")
_OPTIONS = {f.name for f in fields(SweepConfig)}


class Sweep:
    """A named search stored in one store, run by one or many processes.

    Example:
        >>> import hpo_lightning as hl
        >>> def objective(params, callback):
        ...     return (params["x"] - 0.3) ** 2
        >>> sweep = hl.Sweep(name="demo", objective=objective, space={"x": hl.Float(0, 1)},
        ...                  monitor="loss", n_trials=5, storage=":memory:", tuner="random", seed=0)
        >>> sweep.run(progress="quiet").n_complete
        5

    The plain loop for your own script::

        for trial in sweep:
            trainer = Trainer(max_epochs=10, callbacks=[trial.callback])
            trainer.fit(Model(**trial.params), datamodule)
    """

    def __init__(self, config: SweepConfig | None = None, **options: Any) -> None:
        _check_options(options)
        if config is None:
            options.setdefault("base_dir", os.getcwd())
            config = SweepConfig(**options)
        elif options:
            config = replace(config, **options)
        self.config = config
        self.name = config.name
        resolve_objective(config.objective, config.base_dir)  # fails before anything is written
        if joined_trial(config.name) is None:
            make_launcher(config.launcher).validate(config, config.n_workers)
        self.storage: Storage = open_storage(config.storage_location())
        if joined_trial(config.name) is not None:
            self.record = self.storage.get_sweep(config.name)  # another DDP rank writes nothing
        else:
            self._prepare_record()

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **overrides: Any) -> Sweep:
        """A sweep from a YAML sweep file; ``overrides`` replace file keys (e.g. n_workers)."""
        cfg = load_sweep_file(path)
        overrides = {k: v for k, v in overrides.items() if v is not None}
        return cls(replace(cfg, **overrides) if overrides else cfg)

    @classmethod
    def join(cls, storage: str, name: str, **overrides: Any) -> Sweep:
        """Join an existing sweep from its stored definition (``hpo-lightning worker``)."""
        store = open_storage(storage, create=False)
        d = store.get_sweep(name).definition
        store.close()
        tuner = d.get("tuner") or {}
        cfg = SweepConfig(
            name=name,
            objective=d["objective"],
            space=d["space"],
            monitor=d["monitor"],
            mode=d["mode"],
            tuner=tuner.get("name", "tpe"),
            tuner_options=tuner.get("options", {}),
            n_trials=int(d["n_trials"]),
            storage=storage,
            seed=d.get("seed"),
            objective_args=d.get("objective_args", {}),
            scheduler=d.get("scheduler"),
            base_dir=d.get("base_dir", "."),
            mlflow=d.get("mlflow"),
            heartbeat_s=float(d.get("heartbeat_s", SweepConfig.heartbeat_s)),
            lost_after_s=float(d.get("lost_after_s", SweepConfig.lost_after_s)),
            resources=d.get("resources"),
            checkpoints=d.get("checkpoints"),
            constraints=d.get("constraints"),
            scheduler_objective=d.get("scheduler_objective"),
        )
        overrides = {k: v for k, v in overrides.items() if v is not None}
        return cls(replace(cfg, **overrides) if overrides else cfg)

    def _prepare_record(self) -> None:
        cfg = self.config
        definition = cfg.definition()
        existing = {s.name: s for s in self.storage.list_sweeps()}.get(cfg.name)
        if existing is not None and self._redefinable(existing, definition):
            existing = None
        if existing is not None:
            check_same_definition(cfg.name, existing.definition, definition)
            stored_seed = existing.definition.get("seed")
            if cfg.seed is None and stored_seed is not None:
                self.config = cfg = cfg.with_seed(int(stored_seed))
            self.record = existing
            if cfg.n_trials > int(existing.definition.get("n_trials") or 0):
                # an extended rerun: workers that join (hpo-lightning worker) read the new size
                self.record = self.storage.raise_n_trials(existing.id, cfg.n_trials)
            return
        if cfg.seed is None:
            self.config = cfg = cfg.with_seed(new_seed())
        definition = cfg.definition()
        if cfg.mlflow:
            definition["mlflow"] = dict(cfg.mlflow)
        self.record = self.storage.create_sweep(cfg.name, definition, mode=cfg.primary_mode)
        if self.record.definition.get("seed") != cfg.seed:  # another process created it first
            check_same_definition(cfg.name, self.record.definition, definition)
            self.config = cfg.with_seed(int(self.record.definition["seed"]))

    def _redefinable(self, existing: SweepRecord, definition: dict[str, Any]) -> bool:
        """A sweep that never finished a trial (e.g. every trial failed on a misspelled
        monitor) takes a corrected definition: its old record and trials are deleted."""
        diff = definition_diff(existing.definition, definition)
        if not diff:
            return False
        trials = self.storage.get_trials(existing.id)
        if any(
            t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in trials
        ):
            return False
        self.storage.delete_sweep(existing.id)
        log.warning(
            "sweep '%s' had finished no trial, so it is redefined (%s); its %d earlier "
            "trials are deleted",
            self.name,
            "; ".join(diff),
            len(trials),
        )
        return True

    # --- running ----------------------------------------------------------------------
    def run(
        self,
        *,
        n_workers: int | str | None = None,
        progress: str = "auto",
        max_trials: int | None = None,
        isolate: bool = False,
    ) -> SweepResult:
        """Run until n_trials trials finished (or timeout / max_failures / a stop request).

        Args:
            n_workers: workers (default: the config's; "auto" places them by ``resources``).
            progress: "auto", "bar", "lines" or "quiet".
            max_trials: stop this call once the sweep has this many finished trials.
            isolate: run even a single worker in a process of its own (the command line does:
                a trial that kills its process then does not kill the sweep).

        Ctrl-C and SIGTERM follow the stop contract (see ``hpo_lightning.sweep._stop``): the
        result's ``stopped`` is INTERRUPTED and ``exit_code`` 130 or 143.
        """
        joined = joined_trial(self.name)
        if joined is not None:  # another DDP rank of rank 0's trial
            token = StopToken()
            with stop_on_signals(token):  # stop with rank 0, at the epoch it broadcasts
                Worker(self.config, self.storage, self.record, stop=token).run_joined(joined)
            return self.result(StopReason.JOINED)
        workers = n_workers if n_workers is not None else self.config.n_workers
        display = ProgressDisplay(
            self.name,
            self.config.n_trials,
            self.config.objectives().names[0],
            self.config.primary_mode,
            style=progress,
            objectives=self.config.objectives().names,
        )
        token = StopToken()
        launcher = make_launcher(self.config.launcher)
        local = isinstance(launcher, LocalLauncher)
        if local and workers == "auto" and display.style != "quiet":
            print(f"[{self.name}] {describe_auto_workers(self.config)}", file=sys.stderr)
        with display, stop_on_signals(token):
            if local and not isolate and _n(launcher, self.config, workers) == 1:
                reason = self._run_here(display, token, max_trials)
            else:
                reason = run_launched(self, launcher, workers, display, token, max_trials)
        return self.result(reason, token=token)

    def _run_here(
        self, display: ProgressDisplay, token: StopToken, limit: int | None
    ) -> StopReason:
        worker = Worker(self.config, self.storage, self.record, stop=token)
        shown_at = [time.monotonic()]

        def show(every_s: float = 1.0) -> None:
            # reading every trial costs ~0.1 s at 10,000: not after each of many fast trials
            if display.style != "quiet" and time.monotonic() - shown_at[0] >= every_s:
                display.update(self.storage.get_trials(self.record.id))
                shown_at[0] = time.monotonic()

        display.update(self.storage.get_trials(self.record.id))
        try:
            # the bar shows the running trial while it trains, not only between trials
            with display.follow(lambda: self.storage.get_trials(self.record.id)):
                reason = worker.run(limit, on_trial=show)
        except KeyboardInterrupt:
            token.request(reason="stopped by Ctrl-C (SIGINT)")
            return StopReason.INTERRUPTED
        finally:
            worker.close()
        show(every_s=0.0)  # the trials finished since the last update
        return reason

    def __iter__(self) -> Iterator[TrialHandle]:
        """Yield trials for a loop you write; each is finished when the loop moves on."""
        joined = joined_trial(self.name)
        if joined is not None:  # another DDP rank: the loop body runs rank 0's trial once
            yield from _joined_handles(self, joined)
            return
        token = StopToken()
        worker = Worker(self.config, self.storage, self.record, stop=token)
        try:
            with stop_on_signals(token):
                yield from worker.trials()
        finally:
            worker.close()

    def result(
        self, stopped: StopReason = StopReason.DONE, *, token: StopToken | None = None
    ) -> SweepResult:
        """How the sweep stands, for a run that stopped for ``stopped``."""
        trials = self.storage.get_trials(self.record.id)
        s = summarize(trials, self.config.primary_mode)
        objectives = self.config.objectives()
        front = pareto_trials(trials, objectives) if objectives.multi else []
        first_error = next((t.message for t in trials if t.state is TrialState.FAILED), None)
        return SweepResult(
            name=self.name,
            stopped=stopped,
            n_complete=s["complete"],
            n_pruned=s["pruned"],
            n_failed=s["failed"],
            best=s["best"],
            first_error=first_error,
            storage_url=redact_url(self.storage.url),
            n_requeued=len(pending_requeue(trials)),
            exit_code=exit_code(stopped, token or StopToken()),
            pareto=tuple(front),
        )

    def trials(self) -> list[TrialRecord]:
        return self.storage.get_trials(self.record.id)

    def best_checkpoint(self, model_class: Any = None, **load_options: Any) -> Any:
        """The best trial's checkpoint: its path, or loaded into ``model_class`` (a
        LightningModule class). CheckpointNotFoundError when the sweep kept none."""
        from hpo_lightning.sweep._checkpoints import load_best

        return load_best(self.storage, self.name, model_class, **load_options)

    def close(self) -> None:
        self.storage.close()

    def __repr__(self) -> str:
        return f"Sweep({self.name!r}, storage={redact_url(self.storage.url)!r})"


def _check_options(options: dict[str, Any]) -> None:
    """Unknown Sweep/run_sweep options get the same "did you mean" as file keys."""
    for key in options:
        if key not in _OPTIONS:
            hint = did_you_mean(key, sorted(_OPTIONS))
            raise ConfigError(f"unknown sweep option {key!r}{hint}")


def _n(launcher: Any, config: SweepConfig, workers: int | str) -> int:
    """How many workers ``workers`` ("auto" included) means for this launcher."""
    return len(launcher.plan(config, workers)) if workers == "auto" else int(workers)


def _joined_handles(sweep: Sweep, joined: JoinedTrial) -> Iterator[TrialHandle]:
    """The one trial another DDP rank runs inside a ``for trial in sweep`` loop."""
    worker = Worker(sweep.config, sweep.storage, sweep.record)
    worker.scheduler = make_sweep_scheduler(sweep.config)
    trial = Trial(
        sweep=sweep.name, number=joined.number, params=dict(joined.params), id=joined.trial_id
    )
    rec = TrialRecord(
        id=joined.trial_id,
        sweep_id=sweep.record.id,
        number=joined.number,
        state=TrialState.RUNNING,
        params=dict(joined.params),
    )
    # another rank publishes nothing: an empty bus
    yield TrialHandle(
        sweep.name,
        rec,
        worker.callback(trial, joined=True),
        EventBus(),
        objectives=sweep.config.objectives(),
    )


def run_sweep(objective: Any, **options: Any) -> SweepResult:
    """Run a sweep of ``objective(params, callback)``; options are SweepConfig's fields.

    Example:
        >>> import hpo_lightning as hl
        >>> res = hl.run_sweep(lambda p, cb: p["x"] ** 2, name="q", space={"x": hl.Float(-1, 1)},
        ...                    monitor="loss", n_trials=4, storage=":memory:", progress="quiet")
        >>> res.n_complete
        4
    """
    progress = options.pop("progress", "auto")
    n_workers = options.pop("n_workers", None)
    sweep = Sweep(objective=objective, **options)
    try:
        return sweep.run(n_workers=n_workers, progress=progress)
    finally:
        sweep.close()
