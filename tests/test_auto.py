"""The ``auto`` tuner: its choice by space and budget, and that it passes every call through."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace

import pytest

from hpo_lightning import Categorical, Float, Int, SearchSpace, SweepConfig, TrialState
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.schedulers import ASHAScheduler
from hpo_lightning.sweep._config import tuner_options
from hpo_lightning.tuners import AutoTuner, GPTuner, choose_tuner, make_tuner

CONTINUOUS = SearchSpace({"lr": Float(1e-5, 1e-1, log=True), "x": Float(0, 1), "n": Int(1, 8)})
MOSTLY_CATEGORICAL = SearchSpace(
    {
        "lr": Float(1e-5, 1e-1, log=True),
        "opt": Categorical(["adam", "sgd"]),
        "act": Categorical(["relu", "tanh", "gelu"]),
    }
)
ONE_CATEGORICAL = SearchSpace({"x": Float(0, 1), "y": Float(0, 1), "opt": ["a", "b", "c"]})
WIDE = SearchSpace({f"x{i}": Float(0, 1) for i in range(25)})


@pytest.mark.parametrize(
    ("space", "max_trials", "expected"),
    [
        (CONTINUOUS, 30, "gp"),
        (CONTINUOUS, 200, "gp"),
        (ONE_CATEGORICAL, 60, "gp"),
        (MOSTLY_CATEGORICAL, 60, "tpe"),
        (WIDE, 60, "tpe"),
        (CONTINUOUS, 1000, "cmaes"),
        (ONE_CATEGORICAL, 1000, "tpe"),
        (CONTINUOUS, None, "tpe"),
        (SearchSpace({"x": Float(0, 1)}), 1000, "tpe"),
        (WIDE, 1000, "cmaes"),
    ],
)
def test_choice_by_space_and_budget(space: SearchSpace, max_trials: int | None, expected: str):
    assert choose_tuner(space, max_trials)[0] == expected
    tuner = make_tuner("auto", space, seed=0, max_trials=max_trials)
    assert isinstance(tuner, AutoTuner) and tuner.chosen == expected
    assert tuner.tuner.name == expected and expected in repr(tuner)


def test_without_cmaes_large_continuous_budgets_fall_back_to_tpe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cmaes", None)
    assert choose_tuner(CONTINUOUS, 1000)[0] == "tpe"


def test_the_choice_is_logged_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hpo_lightning"):
        make_tuner("auto", MOSTLY_CATEGORICAL, seed=0, max_trials=50)
    assert "chose 'tpe'" in caplog.text and "2 of 3 parameters are categorical" in caplog.text


def test_every_call_reaches_the_chosen_tuner() -> None:
    tuner = AutoTuner(CONTINUOUS, mode="max", seed=1, max_trials=3)
    first = tuner.suggest()
    assert first is not None and tuner.pending == [first] == tuner.tuner.pending
    other = {"lr": 1e-3, "x": 0.5, "n": 2}
    tuner.add_pending(other)
    assert tuner.n_known == tuner.tuner.n_known == 2
    tuner.report_result(other, 0.7, state=TrialState.PRUNED, step=4)
    tuner.report_result(first, 0.9)
    assert tuner.observations == tuner.tuner.observations
    assert tuner.observations[0].step == 4 and tuner.observations[0].loss == -0.7
    assert tuner.best is not None and tuner.best.params == first
    second = tuner.suggest()
    tuner.clear_pending()
    assert tuner.pending == [] == tuner.tuner.pending
    assert second is not None and tuner.suggest() is not None
    assert tuner.suggest() is None  # max_trials=3 suggestions reached


def test_same_seed_same_choice_same_sequence() -> None:
    def run(seed: int) -> list[dict]:
        tuner = make_tuner("auto", ONE_CATEGORICAL, seed=seed, max_trials=14)
        out = []
        while (p := tuner.suggest()) is not None:
            out.append(p)
            tuner.report_result(p, p["x"] + p["y"] + (p["opt"] == "b"))
        return out

    assert run(3) == run(3) != run(4)


@pytest.mark.parametrize(
    ("space", "max_trials", "words"),
    [
        (CONTINUOUS, 60, "past 100 completed trials it searches a trust region"),
        (CONTINUOUS, 1000, "a large budget (1000 trials) on a space without categoricals"),
        (ONE_CATEGORICAL, 1000, "a large budget (1000 trials)"),
        (WIDE, 60, "25 parameters (> 20) are too many for the GP"),
        (WIDE, 1000, "a large budget (1000 trials) on a space without categoricals"),
        (CONTINUOUS, None, "an unknown budget"),
    ],
)
def test_the_reason_names_what_decided(space: SearchSpace, max_trials: int | None, words: str):
    assert words in choose_tuner(space, max_trials)[1]


def test_pruned_trials_do_not_move_the_gp_to_its_local_phase(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a 200-trial sweep with an aggressive scheduler: 150 pruned and 20 completed trials
    tuner = AutoTuner(CONTINUOUS, seed=0, budget=200)
    assert tuner.chosen == "gp"
    gp = tuner.tuner
    assert isinstance(gp, GPTuner)
    for i in range(170):
        state = TrialState.COMPLETE if i % 17 == 0 or i < 10 else TrialState.PRUNED
        tuner.report_result({"lr": 1e-3, "x": i / 170, "n": 1 + i % 8}, float(i), state=state)
    assert not gp.local_phase  # 20 completed < local_from(3) = 100 (an integer in the space)
    for i in range(90):
        tuner.report_result({"lr": 1e-4, "x": i / 90, "n": 2}, 1.0 + i)
    with caplog.at_level(logging.INFO, logger="hpo_lightning"):
        assert gp.local_phase and "local phase from trial 261" in caplog.text


# --- what counts as a trial: full trainings under the sweep's scheduler (issue 17) -----------
def test_a_stopping_scheduler_counts_trials_by_what_they_cost() -> None:
    asha = ASHAScheduler(max_epochs=30).expected_cost()  # 0.29: rungs after 4 and 12 epochs
    name, why = choose_tuner(CONTINUOUS, 300, trial_cost=asha)
    assert name == "gp"  # about 87 full trainings: a small budget
    assert "300 trials, about 87 full trainings with early stopping" in why
    assert choose_tuner(CONTINUOUS, 300)[0] == "cmaes"  # every trial a full training
    assert choose_tuner(CONTINUOUS, 1000, trial_cost=asha)[0] == "cmaes"  # about 289


def test_a_sweep_tells_auto_what_its_scheduler_costs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hpo_lightning"):
        cfg = SweepConfig(
            name="s",
            objective=lambda p, cb: p["x"],
            space={"x": Float(0, 1), "y": Float(0, 1)},
            monitor="loss",
            n_trials=300,
            tuner="auto",
            scheduler={"name": "hyperband", "max_epochs": 30},
        )
    options = tuner_options(cfg)
    assert options["budget"] == 300
    assert options["trial_cost"] == pytest.approx(0.506, abs=1e-3)
    assert "chose 'gp': a small budget (300 trials, about 152 full trainings" in caplog.text
    assert "trial_cost" not in tuner_options(replace(cfg, scheduler=None))


@pytest.mark.parametrize("cost", [0, 1.5, -1, "half", True])
def test_a_bad_trial_cost_is_refused(cost: object) -> None:
    with pytest.raises(UserInputError, match="trial_cost"):
        AutoTuner(CONTINUOUS, seed=0, budget=30, trial_cost=cost)  # type: ignore[arg-type]


def test_a_scheduler_that_cannot_tell_its_cost_counts_trials_as_half() -> None:
    name, why = choose_tuner(CONTINUOUS, 300, trial_cost=None)  # e.g. the median rule
    assert name == "gp" and "about 150 full trainings with early stopping" in why
    assert choose_tuner(CONTINUOUS, 1000, trial_cost=None)[0] == "cmaes"
    median = AutoTuner(CONTINUOUS, seed=0, budget=300, trial_cost=None)
    assert median.chosen == "gp" and "300 trials" in median.reason
