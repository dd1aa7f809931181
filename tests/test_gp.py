"""GPTuner specifics: sample efficiency, in-flight points, failures, pruned trials, the model."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
from scipy.optimize import approx_fprime

from hpo_lightning import Categorical, Float, Int, SearchSpace, TrialState
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.tuners import GPTuner, HyperparameterTuner, make_tuner
from hpo_lightning.tuners._gp import warp_losses
from hpo_lightning.tuners._gp_model import (
    GaussianProcess,
    _per_dim_sq,
    default_theta,
    log_h,
    neg_log_posterior,
)

BRANIN = SearchSpace({"x1": Float(-5, 10), "x2": Float(0, 15)})


def branin(p: Mapping[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


BOWL = SearchSpace({f"x{i}": Float(-2, 2) for i in range(3)})


def bowl(p: Mapping[str, Any]) -> float:
    return sum((p[f"x{i}"] - 0.3 * (i + 1)) ** 2 for i in range(3))


def best_of(tuner: HyperparameterTuner, fn: Callable[[Mapping[str, Any]], float]) -> float:
    best = math.inf
    while (p := tuner.suggest()) is not None:
        v = fn(p)
        tuner.report_result(p, v)
        best = min(best, v)
    return best


@pytest.mark.parametrize(("space", "fn"), [(BRANIN, branin), (BOWL, bowl)], ids=["branin", "bowl"])
def test_gp_beats_random_search_on_most_seeds(space: SearchSpace, fn: Any) -> None:
    # a sign test over 12 fixed seeds: P(>= 10 wins | no difference) = 79/4096 < 2%
    # (a GP stalls on Branin's x1 = 10 edge now and then, as on seed 3: one seed may lose)
    wins = 0
    for seed in range(12):
        gp = best_of(GPTuner(space, seed=seed, max_trials=20), fn)
        rnd = best_of(make_tuner("random", space, seed=seed, max_trials=20), fn)
        wins += gp < rnd
    assert wins >= 10


MIXED = SearchSpace(
    {
        "lr": Float(1e-5, 1e-1, log=True),
        "hidden": Int(8, 512, log=True),
        "batch": Int(16, 128, step=16),
        "opt": Categorical(["adam", "sgd", "rmsprop"]),
    }
)


def mixed_fn(p: Mapping[str, Any]) -> float:
    return (
        (math.log10(p["lr"]) + 3) ** 2
        + (math.log2(p["hidden"]) - 7) ** 2 / 4
        + (p["batch"] - 64) ** 2 / 1e3
        + {"adam": 0.0, "sgd": 0.5, "rmsprop": 0.2}[p["opt"]]
    )


def test_mixed_space_stays_inside_and_finds_the_good_region() -> None:
    tuner = GPTuner(MIXED, seed=1, max_trials=30)
    best_of(tuner, mixed_fn)
    for obs in tuner.observations:
        MIXED.validate(obs.params)
    assert tuner.best is not None and tuner.best.value < 0.5


def test_in_flight_points_are_distinct_in_a_small_discrete_space() -> None:
    space = SearchSpace({"a": Int(0, 3), "b": Categorical(["x", "y"])})  # 8 points
    tuner = GPTuner(space, seed=0, n_startup_trials=2)
    for _ in range(3):
        p = tuner.suggest()
        assert p is not None
        tuner.report_result(p, p["a"] + (p["b"] == "y"))
    in_flight = [tuner.suggest() for _ in range(5)]
    keys = {(p["a"], p["b"]) for p in in_flight if p is not None}
    assert len(keys) == 5


def test_failed_trials_are_imputed_as_the_worst_and_avoided() -> None:
    tuner = GPTuner(BRANIN, seed=0, n_startup_trials=4)
    for _ in range(4):
        p = tuner.suggest()
        assert p is not None
        tuner.report_result(p, math.nan if p["x1"] > 2.5 else branin(p))
    data = tuner.training_data()
    assert data is not None
    _, y = data
    failed = [o.state is TrialState.FAILED for o in tuner.observations]
    assert any(failed) and not all(failed)
    assert np.all(y[failed] == max(y[[not f for f in failed]]))
    assert tuner.suggest() is not None


def test_pruned_trials_enter_at_least_at_the_median_once_enough_trials_completed() -> None:
    space = SearchSpace({"x": Float(0, 1)})
    tuner = GPTuner(space, seed=0)
    tuner.report_result({"x": 0.1}, 5.0, state=TrialState.PRUNED, step=1)
    tuner.report_result({"x": 0.2}, 0.5, state=TrialState.PRUNED, step=3)
    # too few completed trials (dim + 2 = 3): the lower-fidelity view, values as reached
    assert tuner.training_data()[1].tolist() == [5.0, 0.5]  # type: ignore[index]
    for x, v in [(0.3, 1.0), (0.4, 2.0), (0.5, 3.0)]:
        tuner.report_result({"x": x}, v)
    _, y = tuner.training_data()  # type: ignore[misc]
    assert y.tolist() == [5.0, 2.0, 1.0, 2.0, 3.0]


def test_rebuilt_tuner_continues_identically_after_the_model_started() -> None:
    original = GPTuner(MIXED, seed=4, max_trials=40)
    for _ in range(17):
        p = original.suggest()
        assert p is not None
        original.report_result(p, mixed_fn(p))
    rebuilt = GPTuner(MIXED, seed=4, max_trials=40)
    for obs in original.observations:
        rebuilt.report_result(obs.params, obs.value)
    assert [original.suggest() for _ in range(2)] == [rebuilt.suggest() for _ in range(2)]


def test_near_duplicates_of_seen_points_give_way_to_the_next_candidate() -> None:
    tuner = GPTuner(BRANIN, seed=0)
    seen = np.array([[0.5, 0.5]])
    ranked = np.array([[0.5000004, 0.5], [0.9, 0.1], [0.5, 0.5]])
    assert np.array_equal(tuner._drop_near_duplicates(ranked, seen)[0], [0.9, 0.1])
    # when every candidate is a near-duplicate, the ranking is kept as it is
    assert np.array_equal(tuner._drop_near_duplicates(ranked[[0, 2]], seen), ranked[[0, 2]])


def test_options_are_validated_with_a_message() -> None:
    with pytest.raises(UserInputError, match="n_candidates"):
        GPTuner(BRANIN, n_candidates=0)
    with pytest.raises(UserInputError, match="n_startup_trials"):
        make_tuner("gp", BRANIN, n_startup_trials=0)


# --- the model -----------------------------------------------------------------------------
def test_marginal_likelihood_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((15, 3))
    X[:, 2] = (rng.integers(0, 3, 15) + 0.5) / 3
    y = np.sin(4 * X[:, 0]) + X[:, 1]
    sq = _per_dim_sq(X, X, np.array([False, False, True]))
    theta = default_theta(3) - 1.0
    grad = neg_log_posterior(theta, sq, y)[1]
    num = approx_fprime(theta, lambda t: neg_log_posterior(t, sq, y)[0], 1e-6)
    assert np.allclose(grad, num, rtol=1e-4, atol=1e-4)


def test_log_ei_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    X, cat = rng.random((12, 2)), np.array([False, False])
    y = X[:, 0] - X[:, 1]
    gp = GaussianProcess(X, y, np.array([-1.0, -1.5, 0.0, -5.0]), cat)
    pts = rng.random((3, 2))
    _, grad = gp.log_ei_grad(pts, float(y.min()), ~cat)
    for i in range(3):
        num = approx_fprime(pts[i], lambda x: gp.log_ei(x[None], float(y.min()))[0], 1e-7)
        assert np.allclose(grad[i], num, rtol=1e-3, atol=1e-3)


def test_log_h_is_finite_and_monotone_far_into_the_tail() -> None:
    z = np.array([-1e5, -5e3, -999.0, -40.0, -1.0, 0.0, 5.0])
    v = log_h(z)
    assert np.all(np.isfinite(v)) and np.all(np.diff(v) > 0)
    assert v[-1] == pytest.approx(math.log(5.0 + 1.5e-7), rel=1e-6)  # ~ z for large z


def test_warp_keeps_the_order_and_compresses_outliers() -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0, 1e6])
    w = warp_losses(y)
    assert np.all(np.diff(w) > 0)
    assert (w[4] - w[3]) < 100 * (w[3] - w[2])  # linearly it would be 1e6 times
