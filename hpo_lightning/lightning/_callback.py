"""HPOCallback: Lightning hooks in, training events out (the only Lightning-facing class).

Hook mapping: ``on_fit_start`` binds the trial (a sweep's trial, or the tuner's latest pending
suggestion); ``on_train_epoch_start`` -> EpochStart; ``on_train_epoch_end`` -> EpochEnd with
``trainer.callback_metrics``; ``on_fit_end`` -> TrainingFinish; ``on_exception`` ->
TrainingFinish(FAILED). Only global rank 0 publishes, so one trial is written per fit.

Early stopping: after each epoch's EpochEnd, global rank 0 reports the monitored value to an
:class:`~hpo_lightning.schedulers.EarlyStopper` (the framework-free bookkeeping around the
scheduler), broadcasts its decision so every rank stops after the same epoch, and sets
``trainer.should_stop``. A stopped trial ends as PRUNED.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hpo_lightning._objectives import Objectives, final_outcome
from hpo_lightning._trial import (
    FailureKind,
    Mode,
    Trial,
    TrialState,
    check_mode,
    is_better,
    to_metric,
)
from hpo_lightning.events import (
    EpochEnd,
    EpochStart,
    EventBus,
    TrainingEvent,
    TrainingFinish,
    TrainingObserver,
    TunerObserver,
)
from hpo_lightning.exceptions import InvalidMetricError, MetricNotFoundError, UserInputError
from hpo_lightning.lightning._checkpointing import CheckpointHooks
from hpo_lightning.lightning._compat import broadcast, callback_bases
from hpo_lightning.schedulers import (
    Decision,
    EarlyStopper,
    Exploit,
    Scheduler,
    make_scheduler,
)
from hpo_lightning.tracking import Tracker
from hpo_lightning.tuners import HyperparameterTuner

log = logging.getLogger("hpo_lightning")
# what rank 0 tells every rank after an epoch
_GO_ON, _PRUNE, _INTERRUPT, _EXPLOIT = 0, 1, 2, 3


def scalar_metrics(raw: Mapping[str, Any]) -> dict[str, float]:
    """The scalar entries of ``trainer.callback_metrics`` as floats (others are skipped)."""
    out: dict[str, float] = {}
    for key, value in raw.items():
        try:
            out[key] = to_metric(value, key)
        except InvalidMetricError:
            continue
    return out


def _check_kind(name: str, value: Any, kind: type, hint: str) -> None:
    if value is not None and not isinstance(value, kind):
        raise UserInputError(
            f"`{name}` must be a {kind.__name__} ({hint}) or None, but got {value!r}"
        )


def check_scheduler(scheduler: Any) -> Scheduler | None:
    """A scheduler from ``scheduler=``: None, a scheduler name, or an object with ``decide``."""
    if scheduler is None or isinstance(scheduler, Scheduler):
        return scheduler
    if isinstance(scheduler, EarlyStopper):
        return scheduler.scheduler
    if isinstance(scheduler, str):
        return make_scheduler(scheduler)
    if callable(getattr(scheduler, "decide", None)):
        return scheduler
    raise UserInputError(
        f"`scheduler` must be a Scheduler (see make_scheduler), a scheduler name or None, "
        f"but got {scheduler!r}"
    )


class _HPOCallbackImpl(CheckpointHooks):
    """Implementation of :class:`HPOCallback`; see its docstring."""

    def __init__(
        self,
        tuner: HyperparameterTuner | None = None,
        *,
        monitor: str | Sequence[str],
        mode: Mode | Sequence[Mode] | None = None,
        tracker: Tracker | None = None,
        observers: Iterable[TrainingObserver] = (),
        scheduler: Scheduler | EarlyStopper | str | None = None,
        trial: Trial | None = None,
        sweep: str = "default",
        stop: Any = None,
        checkpoints: Any = None,
        resume: str | None = None,
        explored: bool = False,
        constraints: Mapping[str, str] | None = None,
        scheduler_objective: str | None = None,
    ) -> None:
        _check_kind("tuner", tuner, HyperparameterTuner, "a tuner from make_tuner")
        _check_kind(
            "tracker", tracker, Tracker, "e.g. ExperimentTracker; other observers go in observers="
        )
        if mode is None:
            mode = getattr(tuner, "modes", None) or getattr(tuner, "mode", "min")
        # several objectives (or constraints): each is read at the end of fit; per epoch the
        # callback follows the scheduler's objective (the first unless named)
        self.objectives = Objectives.of(
            monitor, mode, constraints=constraints, scheduler_objective=scheduler_objective
        )
        self._at_end = self.objectives.multi or bool(self.objectives.constraints)
        monitor, mode = self.objectives.scheduler_metric, self.objectives.scheduler_mode
        self.mode: Mode = check_mode(mode)
        if tuner is not None and self.objectives.multi:
            if tuple(getattr(tuner, "modes", ())) != self.objectives.modes:
                raise UserInputError(
                    f"the callback's modes {list(self.objectives.modes)} differ from the "
                    f"tuner's {list(getattr(tuner, 'modes', [tuner.mode]))}; use the same "
                    "directions for both"
                )
        elif tuner is not None and getattr(tuner, "mode", self.mode) != self.mode:
            raise UserInputError(
                f"the callback's mode={self.mode!r} differs from the tuner's mode="
                f"{tuner.mode!r}; use the same direction for both"
            )
        self.monitor = monitor
        self.tuner = tuner
        self.tracker = tracker
        self.scheduler = check_scheduler(scheduler)
        self.stopper = self._stopper(scheduler)
        self.sweep = sweep
        self._fixed_trial = trial
        self._stop = stop  # a sweep's StopToken: a stop request ends the fit at an epoch end
        self.checkpoints = checkpoints  # a CheckpointPolicy (the sweep's), or None
        self.resume = resume  # the checkpoint this fit continues from (a resumed trial)
        self.explored = explored  # resume holds a PBT donor's weights; params were explored
        self._ckpt: Any = None
        self.exploit: Exploit | None = None  # set when a PBT step ended the fit
        self._bus = EventBus()
        if tracker is not None:
            self._bus.subscribe(tracker, critical=True)
        if tuner is not None and trial is None:
            self._bus.subscribe(TunerObserver(tuner), critical=True)
        for obs in observers:
            self._bus.subscribe(obs)
        self._local_number = 0
        self._reset(None)

    def _stopper(self, scheduler: Any) -> EarlyStopper | None:
        """The early stopper: the one given (shared by a sweep's callbacks), or one of its own
        around the scheduler (reading peer curves from the tracker's store, if any)."""
        if isinstance(scheduler, EarlyStopper):
            if (scheduler.monitor, scheduler.mode) != (self.monitor, self.mode):
                raise UserInputError(
                    f"the EarlyStopper watches {scheduler.monitor!r} ({scheduler.mode}) but the "
                    f"callback monitors {self.monitor!r} ({self.mode}); make them the same"
                )
            return scheduler
        if self.scheduler is None:
            return None
        storage = self.tracker.storage if self.tracker is not None else None
        return EarlyStopper(self.scheduler, monitor=self.monitor, mode=self.mode, storage=storage)

    def _reset(self, trial: Trial | None) -> None:
        self.trial = trial
        self.values: list[float] = []
        self.best: float = math.nan
        self.epochs = 0
        self.state = TrialState.RUNNING
        self.message: str | None = None
        self.interrupted = False
        self._finished = False
        self._seen_keys: set[str] = set()
        self._sweep_id: int | None = None
        self.exploit = None

    @property
    def finished(self) -> bool:
        """True once the current trial's TrainingFinish was published."""
        return self._finished

    # --- binding --------------------------------------------------------------------
    def subscribe(self, observer: TrainingObserver) -> None:
        """Add an observer of this callback's events (e.g. a logger or MLflowTracker)."""
        self._bus.subscribe(observer)

    def bind(self, trial: Trial) -> None:
        """Use ``trial`` for the next fit (the sweep driver does this)."""
        self._fixed_trial = trial

    def _resolve_trial(self, is_zero: bool) -> Trial:
        if self._fixed_trial is not None:
            return self._fixed_trial
        if self.tuner is None:
            raise UserInputError(
                "HPOCallback has no tuner and no trial; pass a tuner, or use a sweep's "
                "trial.callback"
            )
        pending = self.tuner.pending
        if not pending:
            raise UserInputError(
                "HPOCallback found no params for this fit: call tuner.suggest() and build the "
                "model from its params before trainer.fit()"
            )
        params = pending[-1]
        if self.tracker is not None and is_zero:
            trial = self.tracker.start_trial(params, mode=self.mode, tuner=self.tuner.name)
            if trial is not None:
                return trial
        self._local_number += 1
        return Trial(sweep=self.sweep, number=self._local_number - 1, params=dict(params))

    # --- hooks -------------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._reset(self._resolve_trial(trainer.is_global_zero))
        if self.stopper is not None and self.trial is not None:
            self.stopper.start(self.trial)
            if trainer.is_global_zero:
                self.stopper.check_budget(getattr(trainer, "max_epochs", None))
        if self._stop is not None:
            self._stop.in_fit = True
        if self.checkpoints is not None and self.trial is not None:
            self._start_checkpoints(trainer, pl_module)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or self.trial is None:
            return
        if trainer.is_global_zero:
            self._publish(EpochStart(self.trial, epoch=trainer.current_epoch))

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or self.trial is None:
            return
        epoch = trainer.current_epoch
        raw = trainer.callback_metrics
        self._seen_keys.update(raw.keys())
        value: float | None = None
        if self.monitor in raw:
            value = to_metric(raw[self.monitor], self.monitor)
        elif self._validation_ran(trainer, epoch) and not self._at_end:
            raise self._missing_metric_error()
        self.epochs = epoch + 1
        if value is not None:
            self._record_value(epoch, value)
        if trainer.is_global_zero:
            metrics = scalar_metrics(raw)
            self._publish(EpochEnd(self.trial, epoch=epoch, metrics=metrics, value=value))
        verdict = self._verdict(trainer, epoch, value)
        if verdict == _INTERRUPT:
            self.interrupted = True
            self.message = self._stop.message() if self._stop is not None else "interrupted"
            trainer.should_stop = True
        elif verdict == _PRUNE:
            assert self.stopper is not None and value is not None
            self.state = TrialState.PRUNED
            self.message = self.stopper.stop_message(epoch, value)
            trainer.should_stop = True
        elif verdict == _EXPLOIT:  # the worker continues the trial from the donor's weights
            trainer.should_stop = True
        if self._ckpt is not None and verdict not in (_PRUNE, _EXPLOIT):
            self._ckpt.after_epoch(trainer, self.trial, epoch, value)

    def _record_value(self, epoch: int, value: float, *, restored: bool = False) -> None:
        """Add the monitored value of ``epoch`` to the trial's values and best value
        (``restored``: an epoch a resumed trial reported before, added to its curve too)."""
        assert self.trial is not None
        self.values.append(value)
        if restored and self.stopper is not None:
            self.stopper.restore(self.trial, epoch, value)
        if is_better(value, self.best, self.mode):
            self.best = value

    def _verdict(self, trainer: Any, epoch: int, value: float | None) -> int:
        """Go on, prune or interrupt: decided on global rank 0 and broadcast to every rank, so
        that all ranks stop after the same epoch."""
        stopper = self.stopper if value is not None else None
        if stopper is None and self._stop is None:
            return _GO_ON
        verdict = _GO_ON
        if trainer.is_global_zero:
            decision: Decision | Exploit = Decision.CONTINUE
            if stopper is not None and self.trial is not None and value is not None:
                decision = stopper.report(self.trial, epoch, value)
            if self._stop is not None and self._stop.requested:
                verdict = _INTERRUPT
            elif decision is Decision.STOP:
                verdict = _PRUNE
            elif isinstance(decision, Exploit) and self._can_exploit(trainer, decision):
                self.exploit, verdict = decision, _EXPLOIT
        return int(broadcast(trainer, verdict))  # every rank must take part

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self._stop is not None:
            self._stop.in_fit = False
        if self.trial is None or self._finished or self.exploit is not None:
            return  # (an exploiting trial stays RUNNING: its worker continues it)
        if self.interrupted:
            self._finish(trainer, TrialState.INTERRUPTED, math.nan, self.message)
            return
        if self._at_end:
            self._finish_objectives(trainer)
            return
        if self.monitor not in self._seen_keys and self.epochs > 0 and not self.values:
            raise self._missing_metric_error()  # (a resumed trial may have no epoch left)
        last = self.values[-1] if self.values else math.nan
        state = TrialState.PRUNED if self.state is TrialState.PRUNED else TrialState.COMPLETE
        message = self.message
        failure = None
        if not self.values:
            state, message = TrialState.FAILED, f"no epoch reported '{self.monitor}'"
            failure = FailureKind.NO_METRIC
        elif not math.isfinite(last):
            state, failure = TrialState.FAILED, FailureKind.DIVERGED
            message = f"'{self.monitor}' was {last} at epoch {len(self.values) - 1} (diverged)"
        best = self.best if state is not TrialState.FAILED else math.nan
        if state is TrialState.PRUNED:
            best = last  # a pruned trial counts by what it reached, not by an earlier best
        self._finish(trainer, state, best, message, failure)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        stop = self._stop
        if stop is not None:
            stop.in_fit = False
        if self.trial is None or self._finished:
            return
        if isinstance(exception, KeyboardInterrupt) or (stop is not None and stop.requested):
            # Ctrl-C or SIGTERM (Lightning raises its own SIGTERMException): requeued
            self.interrupted = True
            message = stop.message() if stop is not None else "interrupted: Ctrl-C"
            self._finish(trainer, TrialState.INTERRUPTED, math.nan, message)
            return
        tb = "".join(traceback.format_exception(exception)[-6:])
        msg = f"{type(exception).__name__}: {exception}\n{tb}"[:4000]
        kind = FailureKind.BAD_INPUT if isinstance(exception, UserInputError) else FailureKind.ERROR
        self._finish(trainer, TrialState.FAILED, math.nan, msg, kind)

    # --- internals -------------------------------------------------------------------------
    def _finish(
        self,
        trainer: Any,
        state: TrialState,
        best: float,
        message: str | None,
        failure: FailureKind | None = None,
    ) -> None:
        self._finished = True
        self.state = state
        if self.trial is not None and trainer.is_global_zero:
            self._publish(
                TrainingFinish(
                    self.trial,
                    best_metric=best,
                    best_params=dict(self.trial.params),
                    state=state,
                    epochs=self.epochs,
                    message=message,
                    failure=failure,
                )
            )

    def _finish_objectives(self, trainer: Any) -> None:
        """End a trial of several objectives (or with constraints): each read from the
        metrics logged by the end of fit (see ``hpo_lightning._objectives.final_outcome``)."""
        state = TrialState.PRUNED if self.state is TrialState.PRUNED else TrialState.COMPLETE
        out = final_outcome(
            self.objectives,
            scalar_metrics(trainer.callback_metrics),
            state=state,
            message=self.message,
        )
        self._finished = True
        self.state = out.state
        if self.trial is not None and trainer.is_global_zero:
            self._publish(
                TrainingFinish(
                    self.trial,
                    best_metric=out.value,
                    best_params=dict(self.trial.params),
                    state=out.state,
                    epochs=self.epochs,
                    message=out.message,
                    failure=out.failure,
                    objective_values=out.objective_values,
                    violation=out.violation,
                )
            )

    def _publish(self, event: TrainingEvent) -> None:
        self._bus.publish(event)

    @staticmethod
    def _validation_ran(trainer: Any, epoch: int) -> bool:
        every = getattr(trainer, "check_val_every_n_epoch", 1) or 1
        has_val = bool(
            getattr(trainer, "num_val_batches", [0])
            and any(n for n in (trainer.num_val_batches or [0]))
        )
        return not has_val or (epoch + 1) % every == 0

    def _missing_metric_error(self) -> MetricNotFoundError:
        keys = ", ".join(sorted(self._seen_keys)) or "none"
        return MetricNotFoundError(
            f"the monitored metric '{self.monitor}' was never logged (logged keys: {keys}); "
            f"log it with self.log('{self.monitor}', ...) or set monitor= to one of those keys"
        )

    def __repr__(self) -> str:
        tuner = getattr(self.tuner, "name", None)
        return f"HPOCallback(tuner={tuner!r}, monitor={self.monitor!r}, mode={self.mode!r})"


class HPOCallback(_HPOCallbackImpl, *callback_bases()):  # type: ignore[misc]
    """A Lightning Callback that tunes, stops bad trials and tracks experiments.

    Maps ``on_train_epoch_start``/``on_train_epoch_end``/``on_fit_end`` to the training events
    EpochStart/EpochEnd/TrainingFinish and publishes them to its observers: the tuner's feedback
    (``TunerObserver``), the tracker (the store of record) and any others you subscribe. Works
    with ``pytorch_lightning.Trainer`` and ``lightning.pytorch.Trainer``.

    Args:
        tuner: the tuner whose latest suggestion each fit evaluates (None inside a sweep).
        monitor: the logged metric to optimise, like EarlyStopping's ``monitor``; or a list
            of metrics for several objectives, each read at the end of fit (a metric logged
            only at the last validation is fine).
        mode: "min" or "max" (default: the tuner's); a list of them for several objectives.
        constraints: ``{metric: "<= x" | ">= x"}``, read at the end of fit: a trial that
            misses a bound is kept with its violation (see docs/multiobjective.md).
        scheduler_objective: with several objectives, the one the scheduler follows per
            epoch (default: the first).
        tracker: the Tracker that records the trials (an ExperimentTracker, or your own
            subclass): it receives every event, and the callback uses its ``start_trial`` (to
            number trials driven by ``tuner``) and its ``storage`` (the other trials' curves
            for ``scheduler``), both declared on :class:`~hpo_lightning.tracking.Tracker`.
        observers: more observers of the events.
        scheduler: an early-stopping scheduler or its name (see ``make_scheduler``); it stops
            bad trials with ``trainer.should_stop`` and they end as PRUNED.
        trial: the trial to run (the sweep driver's); by default each fit creates one.
        sweep: name of the sweep for trials created without a tracker.
        stop: a sweep's stop token (set by the sweep's worker): once a stop is requested the
            fit ends after the current epoch and the trial is stored INTERRUPTED.

    Example:
        >>> import hpo_lightning as hl
        >>> tuner = hl.make_tuner("tpe", {"lr": hl.Float(1e-4, 1e-1, log=True)}, mode="max", seed=0)
        >>> cb = hl.HPOCallback(tuner, monitor="val_acc", mode="max")
        >>> params = tuner.suggest()   # then: Trainer(callbacks=[cb]).fit(Model(**params), data)
    """
