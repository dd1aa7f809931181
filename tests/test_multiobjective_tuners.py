"""Tuners with several objectives: the interface, refusals, and search quality (no Lightning)."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pytest
from contract.tuner_contract import MultiObjectiveTunerContract

from hpo_lightning import Float, SearchSpace, TrialState
from hpo_lightning.exceptions import InvalidMetricError, UserInputError
from hpo_lightning.tuners import CMAESTuner, RandomSearchTuner, hypervolume, make_tuner
from hpo_lightning.tuners._registry import multiobjective_names

SPACE = SearchSpace({"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)})


# --- the interface ---------------------------------------------------------------------------
def test_modes_and_observations_keep_every_objective() -> None:
    tuner = make_tuner("random", SPACE, mode=["max", "min"], seed=0)
    assert tuner.n_objectives == 2 and tuner.modes == ("max", "min") and tuner.mode == "max"
    p = tuner.suggest()
    assert p is not None
    tuner.report_result(p, (0.9, 12.0), violation=0.5)
    obs = tuner.observations[0]
    assert obs.values == (0.9, 12.0) and obs.losses == (-0.9, 12.0)
    assert obs.value == 0.9 and obs.loss == -0.9 and obs.violation == 0.5 and not obs.feasible


def test_one_mode_in_a_list_is_single_objective() -> None:
    tuner = make_tuner("tpe", SPACE, mode=["max"], seed=0)
    assert tuner.n_objectives == 1 and tuner.mode == "max"
    tuner.report_result({"x": 0.1, "y": 0.2}, 3.0)
    assert tuner.observations[0].values == (3.0,) and tuner.observations[0].losses == (-3.0,)


@pytest.mark.parametrize(
    ("metric", "match"),
    [(0.5, "sequence of 2"), ("ab", "sequence of 2"), ([1.0], "has 1 values"), ([1, 2, 3], "3")],
)
def test_wrong_metric_shapes_raise_and_change_nothing(metric: object, match: str) -> None:
    tuner = make_tuner("random", SPACE, mode=["min", "min"], seed=0)
    p = tuner.suggest()
    with pytest.raises(InvalidMetricError, match=match):
        tuner.report_result(p, metric)  # type: ignore[arg-type]
    assert tuner.observations == [] and tuner.pending == [p]


@pytest.mark.parametrize("bad", [[math.nan, 1.0], [1.0, math.inf], np.array([1.0, -np.inf])])
def test_a_non_finite_objective_fails_the_trial(bad: object) -> None:
    tuner = make_tuner("random", SPACE, mode=["min", "max"], seed=0)
    p = tuner.suggest()
    assert p is not None
    tuner.report_result(p, bad)
    obs = tuner.observations[0]
    assert obs.state is TrialState.FAILED and obs.losses == (math.inf, math.inf)
    assert tuner.best is None and tuner.pareto == []


@pytest.mark.parametrize("bad", [-0.1, math.nan, "x", True])
def test_bad_violation_is_refused(bad: object) -> None:
    tuner = make_tuner("random", SPACE, mode=["min", "max"], seed=0)
    with pytest.raises(UserInputError, match="violation"):
        tuner.report_result({"x": 0.1, "y": 0.1}, [1.0, 2.0], violation=bad)  # type: ignore[arg-type]


def test_pareto_is_the_constrained_front_and_best_its_first_objective_end() -> None:
    tuner = make_tuner("random", SPACE, mode=["min", "min"], seed=0)
    rows = [((1.0, 5.0), 0.0), ((2.0, 2.0), 0.0), ((3.0, 3.0), 0.0), ((0.0, 0.0), 1.0)]
    for i, (values, violation) in enumerate(rows):
        tuner.report_result({"x": i / 10, "y": 0.0}, values, violation=violation)
    # (0, 0) dominates everything but violates the constraints: feasible points beat it
    assert [o.values for o in tuner.pareto] == [(1.0, 5.0), (2.0, 2.0)]
    assert tuner.best is not None and tuner.best.values == (1.0, 5.0)


def test_single_objective_best_prefers_feasible() -> None:
    tuner = make_tuner("random", SPACE, mode="min", seed=0)
    tuner.report_result({"x": 0.1, "y": 0.1}, 0.0, violation=2.0)
    tuner.report_result({"x": 0.2, "y": 0.1}, 5.0)
    assert tuner.best is not None and tuner.best.value == 5.0


# --- refusals ----------------------------------------------------------------------------------
def test_single_objective_tuners_refuse_several_objectives() -> None:
    with pytest.raises(UserInputError, match="tuner 'cmaes' optimises one objective") as err:
        make_tuner("cmaes", SPACE, mode=["min", "max"], seed=0)
    assert "random" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserInputError, match="one objective, but 2 were given; use one of"):
        CMAESTuner(SPACE, mode=["min", "max"], seed=0)


def test_bad_modes_are_refused() -> None:
    for bad in [[], ["min", "up"], 3]:
        with pytest.raises(UserInputError, match="mode"):
            RandomSearchTuner(SPACE, mode=bad, seed=0)  # type: ignore[arg-type]


def test_multiobjective_names_include_the_simple_tuners() -> None:
    assert {"grid", "random", "sobol"} <= set(multiobjective_names())
    assert "cmaes" not in multiobjective_names()


# --- the contract, with two objectives ------------------------------------------------------
@pytest.fixture(params=[n for n in multiobjective_names() if n != "grid"])
def tuner_factory(request: pytest.FixtureRequest) -> Any:
    return functools.partial(make_tuner, request.param)


class TestEveryMultiObjectiveTuner(MultiObjectiveTunerContract):
    """Runs for every name in ``multiobjective_names()`` (grid: its own test below)."""


def test_grid_search_accepts_several_objectives_and_exhausts() -> None:
    tuner = make_tuner("grid", {"a": [1, 2], "b": ["x", "y"]}, mode=["min", "max"])
    seen = []
    while (p := tuner.suggest()) is not None:
        seen.append(p)
        tuner.report_result(p, (p["a"], float(p["b"] == "x")))
    assert len(seen) == 4 and [o.values for o in tuner.pareto] == [(1, 1.0)]


def test_auto_says_what_it_picked_for_several_objectives() -> None:
    small = make_tuner("auto", SPACE, mode=["min", "max"], seed=0, max_trials=50)
    assert small.chosen == "gp" and "small budget" in small.reason
    assert make_tuner("auto", SPACE, mode=["min", "max"], seed=0).chosen == "tpe"
    assert make_tuner("auto", SPACE, mode=["min", "max"], seed=0, max_trials=300).chosen == "tpe"
    assert make_tuner("auto", SPACE, mode=["min", "max"], seed=0, max_trials=1000).chosen == "nsga2"
    assert make_tuner("auto", SPACE, mode="min", seed=0, max_trials=50).chosen == "gp"


# --- search quality: ZDT1 ----------------------------------------------------------------------
ZDT_DIM = 5
ZDT_SPACE = SearchSpace({f"x{i}": Float(0.0, 1.0) for i in range(ZDT_DIM)})


def zdt1(params: dict[str, Any]) -> tuple[float, float]:
    """ZDT1 (Zitzler, Deb & Thiele 2000): a convex front at g = 1, x1..x4 = 0."""
    x = np.array([params[f"x{i}"] for i in range(ZDT_DIM)])
    g = 1.0 + 9.0 * float(x[1:].mean())
    return float(x[0]), g * (1.0 - math.sqrt(x[0] / g))


def zdt1_hypervolume(name: str, seed: int, budget: int = 60) -> float:
    tuner = make_tuner(name, ZDT_SPACE, mode=["min", "min"], seed=seed, max_trials=budget)
    while (p := tuner.suggest()) is not None:
        tuner.report_result(p, zdt1(p))
    losses = np.array([o.losses for o in tuner.observations])
    return hypervolume(losses, [1.1, 10.0])


@pytest.mark.parametrize("name", ["tpe", "gp"])
def test_model_based_tuners_beat_random_on_zdt1(name: str) -> None:
    seeds = [0, 1, 2]
    wins = sum(zdt1_hypervolume(name, s) > zdt1_hypervolume("random", s) + 0.3 for s in seeds)
    assert wins >= 2, f"{name} beat random search by > 0.3 on {wins} of {len(seeds)} seeds"


def test_nsga2_beats_random_on_zdt1_at_a_larger_budget() -> None:
    seeds = [0, 1, 2]
    gaps = [zdt1_hypervolume("nsga2", s, 200) - zdt1_hypervolume("random", s, 200) for s in seeds]
    assert sum(g > 0.3 for g in gaps) >= 2, gaps
