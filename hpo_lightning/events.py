"""Training events (the seed's observer pattern) and the observers that consume them.

The training engine (the Lightning callback, or any loop of yours) publishes
:class:`TrainingEvent` values; observers -- the tuner's feedback, trackers, loggers -- receive
them through ``on_event``. Events are frozen values and carry the trial they belong to.

Contract for observers: ``on_event`` must not raise for an event kind it does not handle, and
should be quick (it runs between epochs). An observer that fails is reported by the publisher
with a warning and does not stop training or the other observers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hpo_lightning._trial import FailureKind, Trial, TrialState

if TYPE_CHECKING:
    from hpo_lightning.tuners import HyperparameterTuner

__all__ = [
    "EpochEnd",
    "EpochStart",
    "EventBus",
    "TrainingEvent",
    "TrainingFinish",
    "TrainingObserver",
    "TunerObserver",
]

log = logging.getLogger("hpo_lightning")


@dataclass(frozen=True)
class TrainingEvent:
    """Base of the events; every event names the trial it belongs to."""

    trial: Trial


@dataclass(frozen=True)
class EpochStart(TrainingEvent):
    """An epoch of the trial starts (0-based ``epoch``)."""

    epoch: int = 0


@dataclass(frozen=True)
class EpochEnd(TrainingEvent):
    """An epoch ended with these scalar metrics (``value`` is the monitored one, if logged)."""

    epoch: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)
    value: float | None = None


@dataclass(frozen=True)
class TrainingFinish(TrainingEvent):
    """The trial ended.

    Attributes:
        best_metric: the trial's result: for COMPLETE, the best monitored value over the
            epochs (by the mode); for PRUNED, the last value it reached (a stopped trial counts
            by where it stopped, not by an earlier peak); NaN for FAILED and INTERRUPTED.
        best_params: the trial's params.
        state: COMPLETE, PRUNED (stopped early by a scheduler), FAILED or INTERRUPTED (stopped
            by a stop request; the sweep runs its params again).
        epochs: number of epochs trained.
        message: for FAILED, what went wrong; for PRUNED and INTERRUPTED, why it stopped.
        failure: for FAILED, the kind of failure.
        objective_values: in a multi-objective sweep, every objective's value (in the order
            of ``monitor``) for COMPLETE and PRUNED trials; None otherwise.
        violation: the summed violation of the sweep's constraints (0: feasible), None
            without constraints.
    """

    best_metric: float = math.nan
    best_params: Mapping[str, Any] = field(default_factory=dict)
    state: TrialState = TrialState.COMPLETE
    epochs: int = 0
    message: str | None = None
    failure: FailureKind | None = None
    objective_values: tuple[float, ...] | None = None
    violation: float | None = None


@runtime_checkable
class TrainingObserver(Protocol):
    """Anything with ``on_event(event)`` can observe training."""

    def on_event(self, event: TrainingEvent) -> None: ...


class TunerObserver:
    """Feeds each TrainingFinish back to the tuner with ``report_result`` (the seed's observer).

    Example:
        >>> from hpo_lightning import RandomSearchTuner, Float, Trial
        >>> tuner = RandomSearchTuner({"x": Float(0, 1)}, seed=0)
        >>> p = tuner.suggest()
        >>> event = TrainingFinish(Trial("s", 0, p), best_metric=0.3, best_params=p)
        >>> TunerObserver(tuner).on_event(event)
        >>> tuner.best.value
        0.3
    """

    def __init__(self, tuner: HyperparameterTuner) -> None:
        self.tuner = tuner

    def on_event(self, event: TrainingEvent) -> None:
        if isinstance(event, TrainingFinish):
            if event.state.requeued:
                return  # run again later: not a result
            last_epoch = event.epochs - 1 if event.epochs else None
            value: Any = event.best_metric
            if event.objective_values is not None or getattr(self.tuner, "n_objectives", 1) > 1:
                value = event.objective_values  # None (failed): NaN for every objective
            options = {} if event.violation is None else {"violation": event.violation}
            self.tuner.report_result(
                event.best_params or event.trial.params,
                value,
                state=event.state,
                step=last_epoch if event.state is TrialState.PRUNED else None,
                **options,
            )


class EventBus:
    """Publishes events to a list of observers, isolating failures of each observer."""

    def __init__(self, observers: Iterable[TrainingObserver] = ()) -> None:
        self.observers: list[TrainingObserver] = []
        self._critical: set[int] = set()
        self._warned: set[int] = set()
        for o in observers:
            self.subscribe(o)

    def subscribe(self, observer: TrainingObserver, *, critical: bool = False) -> None:
        """Add an observer; a *critical* one's errors propagate (e.g. the store of record)."""
        if not callable(getattr(observer, "on_event", None)):
            from hpo_lightning.exceptions import UserInputError

            raise UserInputError(
                f"an observer needs an on_event(event) method, but got {observer!r}"
            )
        self.observers.append(observer)
        if critical:
            self._critical.add(id(observer))

    def publish(self, event: TrainingEvent) -> None:
        for obs in self.observers:
            try:
                obs.on_event(event)
            except Exception as exc:  # an observer must never stop training
                if id(obs) in self._critical:
                    raise
                if id(obs) not in self._warned:
                    self._warned.add(id(obs))
                    log.warning(
                        "observer %s failed on %s and is skipped for this event: %s",
                        type(obs).__name__,
                        type(event).__name__,
                        exc,
                    )
