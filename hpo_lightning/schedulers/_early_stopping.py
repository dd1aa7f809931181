"""Early stopping without a framework: a scheduler applied to the epochs trials report.

:class:`EarlyStopper` is the bookkeeping between a training loop and a :class:`Scheduler`: it
keeps each trial's learning curve as it is reported, finds the other trials' curves (in the
store when the trial is stored, else the curves of the trials it saw), asks the scheduler and
answers with a decision. The Lightning callback and ``trial.report_epoch`` of a sweep's plain
loop both use it, so a loop without Lightning stops trials exactly like a fit does.

This module imports neither a framework nor a store: the store is any object with
``get_sweep(name).id`` and ``get_curves(sweep_id, metric)`` (every
:class:`~hpo_lightning.storage.Storage` has both).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from hpo_lightning._trial import Mode, Trial, check_mode
from hpo_lightning.schedulers._base import Decision, Exploit, LearningCurve, Scheduler

log = logging.getLogger("hpo_lightning")


class EarlyStopper:
    """Apply ``scheduler`` to the epochs of a sweep's trials, one report at a time.

    One stopper serves every trial of a sweep in one process (a worker makes one and hands it
    to each trial's callback or handle): it remembers the curves it was told and warns about a
    scheduler budget once. It never raises for the scheduler: a scheduler or store that fails
    is logged once per trial and the trial goes on.

    Args:
        scheduler: the scheduler to apply.
        monitor: the name of the reported metric (the curves read from the store are its).
        mode: "min" or "max".
        storage: the store to read the other trials' curves from (stored trials only);
            None: the curves of the trials this stopper saw.

    Example:
        >>> from hpo_lightning.schedulers import MedianStoppingScheduler
        >>> stopper = EarlyStopper(MedianStoppingScheduler(warmup_epochs=0, min_trials=1),
        ...                        monitor="loss", mode="min")
        >>> good, bad = Trial("s", 0), Trial("s", 1)
        >>> [stopper.report(good, e, v) for e, v in enumerate([0.5, 0.4])]
        [<Decision.CONTINUE: 'continue'>, <Decision.CONTINUE: 'continue'>]
        >>> stopper.report(bad, 0, 0.9)
        <Decision.STOP: 'stop'>
    """

    def __init__(
        self, scheduler: Scheduler, *, monitor: str, mode: Mode, storage: Any = None
    ) -> None:
        self.scheduler = scheduler
        self.monitor = monitor
        self.mode: Mode = check_mode(mode)
        self.storage = storage
        # curves reported here, by sweep and trial number (the peers when there is no store)
        self._memory: dict[str, dict[int, dict[int, float]]] = {}
        # other trials' curves as built for the scheduler, by (sweep, trial number), with the
        # mapping they were built from (see _as_curve)
        self._built: dict[tuple[str, int], tuple[Mapping[int, float], LearningCurve]] = {}
        self._sweep_ids: dict[str, int] = {}
        self._budget_warned: set[tuple[int, int]] = set()
        self._failed: set[tuple[str, int]] = set()  # trials whose scheduler failure was logged

    @property
    def name(self) -> str:
        return getattr(self.scheduler, "name", type(self.scheduler).__name__)

    def curve(self, trial: Trial) -> Mapping[int, float]:
        """The values ``trial`` reported so far, by epoch."""
        return self._memory.get(trial.sweep, {}).get(trial.number, {})

    def start(self, trial: Trial) -> None:
        """``trial`` (re)starts from epoch 0: forget what this stopper was told of it."""
        self._memory.setdefault(trial.sweep, {})[trial.number] = {}
        self._failed.discard((trial.sweep, trial.number))

    def restore(self, trial: Trial, epoch: int, value: float) -> None:
        """Add an epoch a resumed trial reported before (no decision)."""
        self._memory.setdefault(trial.sweep, {}).setdefault(trial.number, {})[epoch] = value

    def report(self, trial: Trial, epoch: int, value: float) -> Decision | Exploit:
        """Record ``value`` for ``epoch`` of ``trial`` and decide whether the trial goes on.

        CONTINUE (and one warning per trial) when the scheduler or the store fails.
        """
        points = self._memory.setdefault(trial.sweep, {}).setdefault(trial.number, {})
        points[epoch] = value
        try:
            curve = LearningCurve.of(trial.number, points)
            others = [
                self._as_curve(trial.sweep, n, c)
                for n, c in self._peers(trial).items()
                if n != trial.number and c
            ]
            decision = self.scheduler.decide(curve, others, mode=self.mode)
            return decision if isinstance(decision, Exploit) else Decision(decision)
        except Exception as exc:  # a failing scheduler or store must not end the training
            if (trial.sweep, trial.number) not in self._failed:
                self._failed.add((trial.sweep, trial.number))
                log.warning(
                    "the %s scheduler could not decide at epoch %d of trial %d, the trial "
                    "goes on: %s: %s",
                    self.name,
                    epoch,
                    trial.number,
                    type(exc).__name__,
                    exc,
                )
            return Decision.CONTINUE

    def stop_message(self, epoch: int, value: float) -> str:
        """Why a trial stopped after ``epoch`` (stored as the PRUNED trial's message)."""
        where = f"after epoch {epoch} ({self.monitor}={value:.6g})"
        return f"stopped by the {self.name} scheduler {where}"

    def check_budget(self, max_epochs: int | None) -> None:
        """Warn once when an epoch-budget scheduler (ASHA, Hyperband) plans for another
        ``max_epochs`` than the training runs: its rungs (and Hyperband's brackets) are laid
        out for a budget that no trial trains to."""
        planned = getattr(self.scheduler, "max_epochs", None)
        if (
            not isinstance(planned, int)
            or not isinstance(max_epochs, int)
            or max_epochs < 1  # -1: no epoch limit
            or planned == max_epochs
            or (planned, max_epochs) in self._budget_warned
        ):
            return
        self._budget_warned.add((planned, max_epochs))
        log.warning(
            "the %s scheduler plans for max_epochs=%d but the Trainer stops at max_epochs=%d: "
            "give the scheduler max_epochs=%d so that its rungs fit the training",
            self.name,
            planned,
            max_epochs,
            max_epochs,
        )

    def _peers(self, trial: Trial) -> Mapping[int, Mapping[int, float]]:
        """The sweep's curves of the monitored metric: from the store, else from memory."""
        storage = self.storage
        if trial.id is not None and callable(getattr(storage, "get_curves", None)):
            sweep_id = self._sweep_ids.get(trial.sweep)
            if sweep_id is None:
                sweep_id = self._sweep_ids[trial.sweep] = storage.get_sweep(trial.sweep).id
            curves: Mapping[int, Mapping[int, float]] = storage.get_curves(sweep_id, self.monitor)
            return curves
        return self._memory.get(trial.sweep, {})

    def _as_curve(self, sweep: str, number: int, points: Mapping[int, float]) -> LearningCurve:
        """``LearningCurve.of(number, points)``, built once per mapping object.

        Both sources hand out a finished trial's curve as the same unchanging mapping at every
        epoch (the store's per-process cache, this stopper's memory) and a running trial's as
        a new one, so the identity of the mapping says whether the curve can have changed;
        rebuilding every curve at every epoch cost 39 ms per epoch at 2000 trials x 50 epochs.
        """
        hit = self._built.get((sweep, number))
        if hit is not None and hit[0] is points:
            return hit[1]
        curve = LearningCurve.of(number, points)
        self._built[(sweep, number)] = (points, curve)
        return curve

    def __repr__(self) -> str:
        return f"EarlyStopper({self.scheduler!r}, monitor={self.monitor!r}, mode={self.mode!r})"
