"""Early stopping without Lightning: ``trial.report_epoch`` in a plain loop, and EarlyStopper.

The loops below train nothing: each trial's curve is set by its ``quality`` parameter
(``loss = quality + 1 / (epoch + 1)``), as in test_callback_scheduler.py, so each test knows
which trials a scheduler stops and when; the same grids and epochs as the Lightning tests.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest

import hpo_lightning as hl
from hpo_lightning import Decision, EarlyStopper, Trial, TrialState
from hpo_lightning._trial import FailureKind
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.schedulers import ASHAScheduler, MedianStoppingScheduler, Scheduler

MAX_EPOCHS = 8
QUALITIES = [0.5, 0.9, 0.2, 0.4, 0.3]
ASHA_EPOCHS = [8, 1, 8, 2, 4]  # as in test_callback_scheduler.py


def loss(quality: float, epoch: int) -> float:
    return quality + 1.0 / (epoch + 1)


def plain_sweep(db: Path, qualities: list[float], scheduler: dict[str, Any]) -> hl.Sweep:
    return hl.Sweep(
        name="plain",
        objective=lambda p, cb: None,  # the loop below is the objective
        space={"quality": qualities},
        tuner="grid",
        monitor="loss",
        mode="min",
        n_trials=len(qualities),
        storage=str(db),
        seed=0,
        scheduler=scheduler,
    )


def run_plain_loop(sweep: hl.Sweep) -> list[Decision]:
    """The README's loop: report each epoch, leave the trial when told to stop."""
    last = []
    for trial in sweep:
        for epoch in range(MAX_EPOCHS):
            decision = trial.report_epoch(epoch, loss(trial.params["quality"], epoch))
            if decision is Decision.STOP:
                break
        last.append(decision)
    return last


def test_asha_prunes_a_plain_loop_and_stores_the_epochs(db_path: Path) -> None:
    asha = {"name": "asha", "min_epochs": 1, "reduction_factor": 2, "max_epochs": MAX_EPOCHS}
    sweep = plain_sweep(db_path, QUALITIES, asha)
    decisions = run_plain_loop(sweep)
    trials = sweep.trials()
    assert [t.epochs for t in trials] == ASHA_EPOCHS
    expected = [TrialState.PRUNED if e < MAX_EPOCHS else TrialState.COMPLETE for e in ASHA_EPOCHS]
    assert [t.state for t in trials] == expected
    assert decisions == [
        Decision.STOP if s is TrialState.PRUNED else Decision.CONTINUE for s in expected
    ]
    # a pruned trial counts by its last value; a complete one by its best (the last here)
    assert trials[3].value == pytest.approx(loss(0.4, 1))
    assert trials[2].value == pytest.approx(loss(0.2, MAX_EPOCHS - 1))
    assert "asha" in (trials[3].message or "") and "epoch 1" in (trials[3].message or "")
    assert sorted(sweep.storage.get_metrics(trials[3].id)) == [0, 1]  # nothing after the stop
    assert sweep.result().n_pruned == 3
    sweep.close()


def test_median_rule_in_a_plain_loop(db_path: Path) -> None:
    median = {"name": "median", "warmup_epochs": 2, "min_trials": 2}
    sweep = plain_sweep(db_path, [0.3, 0.2, 0.4, 0.9, 0.1], median)
    run_plain_loop(sweep)
    # the same stop as HPOCallback's median test: 0.9 stops after 3 epochs
    assert [t.epochs for t in sweep.trials()] == [8, 8, 8, 3, 8]
    assert sweep.trials()[3].state is TrialState.PRUNED
    sweep.close()


def test_reports_after_a_stop_are_ignored_and_a_complete_trial_keeps_its_best(
    db_path: Path,
) -> None:
    sweep = hl.Sweep(
        name="best",
        objective=lambda p, cb: None,
        space={"q": [1.0]},
        tuner="grid",
        monitor="acc",
        mode="max",
        n_trials=1,
        storage=str(db_path),
        seed=0,
    )
    for trial in sweep:
        for epoch, acc in enumerate([0.5, 0.8, 0.7]):  # no scheduler: always CONTINUE
            assert trial.report_epoch(epoch, acc) is Decision.CONTINUE
    (rec,) = sweep.trials()
    assert (rec.state, rec.value, rec.epochs) == (TrialState.COMPLETE, 0.8, 3)
    sweep.close()


def test_a_diverged_plain_loop_fails(db_path: Path) -> None:
    sweep = plain_sweep(db_path, [0.5], {"name": "median", "warmup_epochs": 5, "min_trials": 5})
    for trial in sweep:
        trial.report_epoch(0, 0.4)
        trial.report_epoch(1, math.nan)
    (rec,) = sweep.trials()
    assert (rec.state, rec.failure, rec.epochs) == (TrialState.FAILED, FailureKind.DIVERGED, 2)
    sweep.close()


class Broken(Scheduler):
    name = "broken"

    def decide(self, curve: Any, others: Any, *, mode: Any) -> Decision:
        raise RuntimeError("scheduler bug")

    def options(self) -> dict[str, Any]:
        return {}


def test_a_failing_scheduler_goes_on_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    stopper = EarlyStopper(Broken(), monitor="loss", mode="min")
    trial = Trial("s", 0)
    stopper.start(trial)
    with caplog.at_level(logging.WARNING, logger="hpo_lightning"):
        decisions = [stopper.report(trial, e, 1.0) for e in range(4)]
    assert decisions == [Decision.CONTINUE] * 4
    assert caplog.text.count("scheduler bug") == 1  # once per trial, not once per epoch


def test_budget_warning_once_per_stopper(caplog: pytest.LogCaptureFixture) -> None:
    stopper = EarlyStopper(ASHAScheduler(max_epochs=20), monitor="loss", mode="min")
    with caplog.at_level(logging.WARNING, logger="hpo_lightning"):
        for _ in range(3):
            stopper.check_budget(10)
        stopper.check_budget(20)  # as planned: silent
        stopper.check_budget(-1)  # no epoch limit: silent
    assert caplog.text.count("plans for max_epochs=20") == 1
    # another stopper (another sweep) warns on its own
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hpo_lightning"):
        EarlyStopper(ASHAScheduler(max_epochs=20), monitor="loss", mode="min").check_budget(10)
    assert "plans for max_epochs=20" in caplog.text


def test_peers_come_from_memory_without_a_store() -> None:
    stopper = EarlyStopper(
        MedianStoppingScheduler(warmup_epochs=0, min_trials=1), monitor="loss", mode="max"
    )
    good, bad = Trial("s", 0), Trial("s", 1)
    for t in (good, bad):
        stopper.start(t)
    assert stopper.report(good, 0, 0.9) is Decision.CONTINUE
    assert stopper.report(bad, 0, 0.1) is Decision.STOP  # max: 0.1 is worse than 0.9
    assert dict(stopper.curve(bad)) == {0: 0.1}
    assert stopper.report(Trial("other", 0), 0, 0.1) is Decision.CONTINUE  # no peer there


def test_a_callback_refuses_a_stopper_for_another_metric() -> None:
    pytest.importorskip("pytorch_lightning")
    stopper = EarlyStopper(ASHAScheduler(), monitor="val_loss", mode="min")
    with pytest.raises(UserInputError, match="EarlyStopper watches 'val_loss'"):
        hl.HPOCallback(None, monitor="val_acc", mode="max", scheduler=stopper)
    assert hl.HPOCallback(None, monitor="val_loss", scheduler=stopper).stopper is stopper


def test_the_callback_names_a_wrong_tracker_or_tuner() -> None:
    pytest.importorskip("pytorch_lightning")
    with pytest.raises(UserInputError, match=r"`tracker` must be a Tracker .*observers="):
        hl.HPOCallback(None, monitor="loss", tracker=object())  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match="`tuner` must be a HyperparameterTuner"):
        hl.HPOCallback("tpe", monitor="loss")  # type: ignore[arg-type]
