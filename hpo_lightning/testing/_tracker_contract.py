"""The tracker contract (see ``hpo_lightning/tracking/_base.py``), as a reusable test class.

Subclass :class:`TrackerContract` in a test module and provide a ``tracker`` fixture: a fresh
tracker (closed by the fixture or not: ``close`` may be called twice). The checks send it a
trial's whole life as :class:`~hpo_lightning.events.TrainingEvent` values, as the Lightning
callback and the sweep workers do, and check what the callback relies on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from hpo_lightning._trial import FailureKind, Trial, TrialState
from hpo_lightning.events import EpochEnd, EpochStart, TrainingEvent, TrainingFinish
from hpo_lightning.tracking import Tracker

DEFINITION = {
    "name": "contract",
    "objective": "contract:objective",
    "space": {"x": {"type": "float", "low": 0.0, "high": 4.0}},
    "tuner": {"name": "random", "options": {}},
    "monitor": "loss",
    "mode": "min",
    "n_trials": 4,
    "seed": 0,
}


@dataclass(frozen=True)
class _OtherEvent(TrainingEvent):
    """An event kind a tracker does not know (a later version may add some)."""


def trial_of(tracker: Tracker, params: dict[str, float], number: int = 0) -> Trial:
    """The tracker's trial for ``params``, or a trial of its own when it numbers none."""
    trial = tracker.start_trial(params, mode="min", tuner="contract")
    return trial if trial is not None else Trial("contract", number, params)


def life(trial: Trial, values: list[float], state: TrialState) -> list[TrainingEvent]:
    """The events of a trial that reported ``values`` and ended ``state``."""
    events: list[TrainingEvent] = []
    for epoch, v in enumerate(values):
        events.append(EpochStart(trial, epoch=epoch))
        events.append(EpochEnd(trial, epoch=epoch, metrics={"loss": v, "acc": 1 - v}, value=v))
    best = min(values) if state is TrialState.COMPLETE else values[-1]
    failure = FailureKind.DIVERGED if state is TrialState.FAILED else None
    value = math.nan if state is TrialState.FAILED else best
    events.append(
        TrainingFinish(
            trial,
            best_metric=value,
            best_params=trial.params,
            state=state,
            epochs=len(values),
            failure=failure,
        )
    )
    return events


class TrackerContract:
    """The checks every tracker must pass. Needs a ``tracker`` fixture."""

    @pytest.fixture
    def tracker(self) -> Tracker:
        raise NotImplementedError("provide a `tracker` fixture: a fresh tracker")

    def test_is_a_tracker(self, tracker: Tracker) -> None:
        assert isinstance(tracker, Tracker)  # what HPOCallback(tracker=...) accepts
        storage = tracker.storage
        assert storage is None or callable(getattr(storage, "get_curves", None))

    def test_records_a_sweep_of_every_kind_of_trial(self, tracker: Tracker) -> None:
        tracker.sweep_started("contract", DEFINITION)
        ends = {
            TrialState.COMPLETE: [0.5, 0.4, 0.45],
            TrialState.PRUNED: [0.9],
            TrialState.FAILED: [0.7, math.nan],
            TrialState.INTERRUPTED: [0.6],
        }
        trials = []
        for number, (state, values) in enumerate(ends.items()):
            trial = trial_of(tracker, {"x": float(number)}, number)
            assert trial.params == {"x": float(number)}
            trials.append(trial)
            for event in life(trial, values, state):
                tracker.on_event(event)
        tracker.on_event(_OtherEvent(trials[0]))  # an unknown kind is ignored
        tracker.sweep_finished("contract")
        if tracker.storage is not None and trials[0].id is not None:
            # a tracker with a store is the record: what it was told is there
            stored = {
                t.id: t
                for t in tracker.storage.get_trials(tracker.storage.get_sweep(trials[0].sweep).id)
            }
            got = [stored[t.id].state for t in trials]  # type: ignore[index]
            assert got == list(ends)
            assert stored[trials[0].id].value == pytest.approx(0.4)
            assert stored[trials[0].id].epochs == 3

    def test_start_trial_numbers_trials_apart(self, tracker: Tracker) -> None:
        a = tracker.start_trial({"x": 1.0}, mode="max", tuner="contract")
        b = tracker.start_trial({"x": 1.0}, mode="max", tuner="contract")
        if a is None or b is None:
            assert a is None and b is None  # a tracker numbers every trial or none
            return
        assert (a.sweep, a.number) != (b.sweep, b.number)

    def test_close_twice(self, tracker: Tracker) -> None:
        tracker.close()
        tracker.close()
