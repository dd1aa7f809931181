"""Tuners: the contract against every registered tuner, plus grid, factory and TPE specifics."""

from __future__ import annotations

import functools
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from hpo_lightning import (
    Categorical,
    Float,
    GridSearchTuner,
    Int,
    RandomSearchTuner,
    SearchSpace,
    TPETuner,
    TrialState,
    TunerFactory,
    make_tuner,
    tuner_names,
)
from hpo_lightning.exceptions import InvalidSpaceError, UnknownNameError, UserInputError
from hpo_lightning.testing import TunerContract


@pytest.fixture(params=tuner_names())
def tuner_factory(request: pytest.FixtureRequest) -> Any:
    return functools.partial(make_tuner, request.param)


class TestEveryRegisteredTuner(TunerContract):
    """Runs for every name in ``tuner_names()``, so tuners registered later are covered."""

    def test_registered_name_is_the_tuner_name(self, tuner_factory: Any) -> None:
        space = SearchSpace({"a": Int(0, 3)})
        assert tuner_factory(space, seed=0).name == tuner_factory.args[0]


def test_the_four_core_tuners_are_registered() -> None:
    assert {"grid", "random", "sobol", "tpe"} <= set(tuner_names())


# --- grid -----------------------------------------------------------------------------------------
def test_grid_takes_the_seeds_dict_of_lists() -> None:
    tuner = GridSearchTuner({"lr": [0.1, 0.01, 0.001], "batch": [16, 32]})
    seen = []
    while (p := tuner.suggest()) is not None:
        seen.append(p)
        tuner.report_result(p, p["lr"])
    assert tuner.grid_size == 6 and len(seen) == 6
    assert {(p["lr"], p["batch"]) for p in seen} == {
        (lr, b) for lr in (0.1, 0.01, 0.001) for b in (16, 32)
    }
    assert tuner.best is not None and tuner.best.params["lr"] == 0.001


def test_grid_over_a_space_of_ints_and_categoricals() -> None:
    space = SearchSpace({"n": Int(0, 20, step=10), "opt": Categorical(["a", "b"])})
    tuner = GridSearchTuner(space)
    grid = [tuner.suggest() for _ in range(7)]
    assert grid[6] is None
    assert sorted((p["n"], p["opt"]) for p in grid[:6] if p) == [
        (n, o) for n in (0, 10, 20) for o in ("a", "b")
    ]


def test_grid_skips_points_taken_by_other_workers() -> None:
    tuner = GridSearchTuner({"a": [1, 2, 3]})
    tuner.add_pending({"a": 1})
    tuner.report_result({"a": 2}, 0.0)
    assert [tuner.suggest(), tuner.suggest()] == [{"a": 3}, None]


def test_grid_shuffle_is_seeded() -> None:
    cands = {"a": list(range(10)), "b": ["x", "y"]}

    def order(**kw: Any) -> list[Any]:
        return list(iter(GridSearchTuner(cands, **kw).suggest, None))

    shuffled = order(shuffle=True, seed=3)
    assert shuffled == order(shuffle=True, seed=3) != order(shuffle=True, seed=4)
    assert len(shuffled) == 20 and shuffled != order()
    assert sorted(map(str, shuffled)) == sorted(map(str, order()))


@pytest.mark.parametrize(
    ("candidates", "match"),
    [
        ({"a": []}, "the grid is empty: parameter 'a'"),
        ({}, "non-empty mapping"),
        ({"x": Float(0, 1)}, r"continuous Floats"),
    ],
)
def test_grid_bad_input(candidates: Any, match: str) -> None:
    with pytest.raises(InvalidSpaceError, match=match):
        GridSearchTuner(candidates)


# --- factory --------------------------------------------------------------------------------------
SPACE = SearchSpace({"x": Float(0, 1)})


def test_make_tuner_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        make_tuner("tpee", SPACE)
    msg = str(info.value)
    assert "'tpee'" in msg and "did you mean 'tpe'" in msg
    for name in tuner_names():
        assert name in msg


def test_make_tuner_unknown_option_suggests_a_close_one() -> None:
    with pytest.raises(
        UserInputError, match=r"no option 'n_startup'.*did you mean 'n_startup_trials'"
    ):
        make_tuner("tpe", SPACE, n_startup=3)
    with pytest.raises(UserInputError, match=r"tuner 'random' has no option 'shuffle'"):
        make_tuner("random", SPACE, shuffle=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "maximize"}, "`mode` must be 'min' or 'max'"),
        ({"seed": -1}, "`seed` must be a non-negative integer"),
        ({"seed": 1.5}, "`seed` must be a non-negative integer"),
        ({"max_trials": 0}, "`max_trials` must be an integer >= 1 or None, but got 0"),
        ({"n_startup_trials": 0}, "`n_startup_trials` must be an integer >= 1"),
        ({"n_ei_candidates": 0}, "`n_ei_candidates` must be an integer >= 1"),
        ({"prior_weight": 0.0}, "`prior_weight` must be > 0"),
    ],
)
def test_make_tuner_validates_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        make_tuner("tpe", SPACE, **kwargs)


def test_make_tuner_accepts_the_plain_dict_space() -> None:
    tuner = make_tuner("random", {"lr": {"type": "float", "low": "1e-4", "high": 0.1, "log": True}})
    assert tuner.space == SearchSpace({"lr": Float(1e-4, 0.1, log=True)})


def test_tuner_factory_keeps_the_seeds_names() -> None:
    assert TunerFactory.make("sobol", SPACE, seed=0).name == "sobol"
    grid = TunerFactory.make_grid_search({"a": [1.0, 2.0]})
    assert isinstance(grid, GridSearchTuner) and grid.grid_size == 2
    rand = TunerFactory.make_random_search({"lr": (0.001, 0.1)}, max_trials=2, seed=0)
    assert isinstance(rand, RandomSearchTuner) and rand.space["lr"] == Float(0.001, 0.1)
    assert [rand.suggest() is None for _ in range(3)] == [False, False, True]


def test_importing_the_tuners_pulls_in_no_framework() -> None:
    code = (
        "import sys, hpo_lightning.tuners, hpo_lightning.space, hpo_lightning.events; "
        "print(sorted(m for m in ('torch', 'lightning', 'pytorch_lightning', 'mlflow', "
        "'sqlite3', 'hpo_lightning.storage', 'hpo_lightning.sweep') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- TPE specifics --------------------------------------------------------------------------------
def test_tpe_beats_random_on_a_bowl() -> None:
    space = SearchSpace({f"x{i}": Float(-3, 3) for i in range(3)})

    def best(name: str, seed: int) -> float:
        tuner = make_tuner(name, space, seed=seed, max_trials=40)
        while (p := tuner.suggest()) is not None:
            tuner.report_result(p, sum((v - 1) ** 2 for v in p.values()))
        assert tuner.best is not None
        return tuner.best.value

    tpe = np.median([best("tpe", s) for s in range(5)])
    rnd = np.median([best("random", s) for s in range(5)])
    assert tpe < rnd / 2


def test_tpe_start_up_is_sobol_then_model() -> None:
    space = SearchSpace({"x": Float(0, 1), "y": Float(0, 1)})
    tpe = TPETuner(space, seed=9, n_startup_trials=4)
    sobol = make_tuner("sobol", space, seed=9)
    for _ in range(4):
        p, q = tpe.suggest(), sobol.suggest()
        assert p == q and p is not None
        tpe.report_result(p, p["x"])
        sobol.report_result(q, q["x"])
    assert tpe.suggest() != sobol.suggest()


def test_tpe_learns_from_pruned_trials_after_complete_ones() -> None:
    # complete trials near x=0.9 are good; pruned trials near 0.1 reached a lower value but
    # must rank after every complete trial, so the model samples near 0.9
    space = SearchSpace({"x": Float(0, 1)})
    tuner = TPETuner(space, seed=0, n_startup_trials=1)
    rng = np.random.default_rng(0)
    for _ in range(12):
        tuner.report_result({"x": float(0.85 + 0.1 * rng.random())}, 1.0)
        tuner.report_result(
            {"x": float(0.05 + 0.1 * rng.random())}, 0.0, state=TrialState.PRUNED, step=1
        )
    picks = [run_one(tuner) for _ in range(10)]
    assert np.median(picks) > 0.5


def run_one(tuner: TPETuner) -> float:
    p = tuner.suggest()
    assert p is not None
    tuner.report_result(p, 1.0)
    return float(p["x"])


def test_tpe_good_set_is_drawn_at_the_highest_fidelity_with_enough_trials() -> None:
    # BOHB's rule: 10 completed trials (>= dim + 2) are enough, so l(x) is the best tenth of
    # them (the one near x=0.1), not every completed trial as a tenth of all 100 trials would be
    space = SearchSpace({"x": Float(0, 1)})
    tuner = TPETuner(space, seed=0, n_startup_trials=1)
    rng = np.random.default_rng(0)
    tuner.report_result({"x": 0.1}, 0.1)
    for _ in range(9):
        tuner.report_result({"x": float(0.6 + 0.1 * rng.random())}, float(0.5 + rng.random()))
    for _ in range(90):
        x = float(0.85 + 0.1 * rng.random())
        tuner.report_result({"x": x}, 2.0, state=TrialState.PRUNED, step=1)
    picks = [run_one(tuner) for _ in range(5)]
    assert np.median(picks) < 0.3


@pytest.mark.parametrize(
    ("complete", "pruned_steps", "size"),
    [
        (5, [], 5),  # no scheduler: every usable trial, as before
        (3, [1] * 20, 3),  # 3 completed = dim + 2: the completed ones
        (1, [9, 9, 3, 3, 3, 1], 3),  # 1 completed + 2 stopped at epoch 9 = 3
        (1, [9, 3, 3, 3, 1], 5),  # 1 + 1 at epoch 9 is too few: down to epoch 3, all ties
        (0, [1, 1], 2),  # too few at any fidelity: all of them
    ],
)
def test_tpe_fidelity_size(complete: int, pruned_steps: list[int], size: int) -> None:
    tuner = TPETuner(SearchSpace({"x": Float(0, 1)}), seed=0)
    for i in range(complete):
        tuner.report_result({"x": i / 10}, float(i))
    for j, step in enumerate(pruned_steps):
        tuner.report_result({"x": j / 100}, 1.0, state=TrialState.PRUNED, step=step)
    tuner.report_result({"x": 0.5}, math.nan)  # a failed trial is at no fidelity
    assert tuner._fidelity_size(tuner._n) == size


GRID = {"a": Int(0, 7), "b": Int(1, 64, log=True), "c": Categorical(["x", "y", "z"])}


def _configs(tuner: TPETuner, n: int, *, in_flight: int = 1) -> list[tuple[Any, ...]]:
    """n suggestions on a bowl over the grid, ``in_flight`` pending at a time."""
    out: list[tuple[Any, ...]] = []
    pending: list[dict[str, Any]] = []
    while len(out) < n:
        while len(pending) < in_flight:
            p = tuner.suggest()
            assert p is not None
            pending.append(p)
            out.append(tuple(p.values()))
        p = pending.pop(0)
        b = math.log2(p.get("b", 8))
        tuner.report_result(p, (p["a"] - 3) ** 2 + abs(b - 3) + (p["c"] != "y"))
    return out[:n]


@pytest.mark.parametrize("in_flight", [1, 4])
def test_tpe_never_repeats_a_configuration_of_a_grid(in_flight: int) -> None:
    # l(x)/g(x) peaks on the good grid points themselves: the old TPE re-suggested them
    for seed in range(3):
        configs = _configs(TPETuner(SearchSpace(GRID), seed=seed), 40, in_flight=in_flight)
        assert len(set(configs)) == 40


def test_tpe_repeats_only_once_the_grid_is_exhausted() -> None:
    space = SearchSpace({"a": Int(0, 2), "c": Categorical(["x", "y"])})
    configs = _configs(TPETuner(space, seed=0, n_startup_trials=2), 8)
    assert len(set(configs[:6])) == 6  # all six, then repeats (suggest never gives up)


def test_tpe_never_repeats_on_a_conditional_grid() -> None:
    space = SearchSpace(
        {"m": Categorical({"p": {"a": Int(0, 3)}, "q": {"b": Int(0, 3), "c": Int(0, 1)}})}
    )
    tuner = TPETuner(space, seed=1, n_startup_trials=3)
    seen = []
    for _ in range(11):  # 4 + 8 configurations
        p = tuner.suggest()
        assert p is not None
        seen.append(tuple(sorted(p.items())))
        tuner.report_result(p, float(p.get("a", 0) + p.get("b", 0)))
    assert len(set(seen)) == 11
