"""GPTuner specifics: sample efficiency, in-flight points, failures, pruned trials, the model."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
from scipy.optimize import approx_fprime

from hpo_lightning import Categorical, Float, Int, SearchSpace, TrialState
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.tuners import GPTuner, HyperparameterTuner, make_tuner
from hpo_lightning.tuners._gp import anchor_count, is_continuous, startup_point, warp_losses
from hpo_lightning.tuners._gp_local import (
    hamming_radius,
    local_from,
    local_subset,
    trust_length,
    within_hamming,
)
from hpo_lightning.tuners._gp_model import (
    GaussianProcess,
    _per_dim_sq,
    default_theta,
    log_h,
    neg_log_posterior,
)
from hpo_lightning.tuners._simple import SobolTuner

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


def _run_in_flight(
    tuner: GPTuner, f: Callable[[Mapping[str, Any]], float], k: int, n: int
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """n suggestions with k in flight (the oldest is reported before the next is made):
    every suggestion with the points that were pending when it was made."""
    made: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    pending: list[dict[str, Any]] = []
    while len(made) < n:
        while len(pending) < k and len(made) < n:
            p = tuner.suggest()
            assert p is not None
            made.append((p, list(pending)))
            pending.append(p)
        q = pending.pop(0)
        tuner.report_result(q, f(q))
    return made


def _slope(p: Mapping[str, Any]) -> float:
    return p["x"] + 0.1 * (p["y"] - 0.5) ** 2  # optimum on the edge x = 0


def test_pending_suggestions_keep_their_distance() -> None:
    """Regression (issue 17): on a smooth slope with 8 in flight the kriging believers put
    the next suggestion 3e-5 from a pending one at the edge (the 1e-6 guard was tuned for
    observed points). Now: _PENDING_SEP (3e-2) of the box's side, the whole cube before the
    local phase."""
    space = SearchSpace({"x": Float(0, 1), "y": Float(0, 1)})
    tuner = GPTuner(space, seed=0)
    made = _run_in_flight(tuner, _slope, 8, 40)
    gaps = [
        min(max(abs(p["x"] - q["x"]), abs(p["y"] - q["y"])) for q in pend)
        for p, pend in made
        if pend
    ]
    assert min(gaps[:20]) >= 3e-2 - 1e-12  # global phase: the box is the cube
    assert min(gaps) > 1e-4
    assert tuner.best is not None and tuner.best.value < 1e-3


def test_start_up_counts_pending_trials() -> None:
    """With k in flight the model takes over after n_startup_trials start-up points, or once
    3 are observed if that is later (8 in flight: 10; it waited for 10 observations, 17 start-up
    points); sequentially the start-up is as before."""
    space = SearchSpace({f"x{i}": Float(0, 1) for i in range(5)})
    ref = SobolTuner(space, seed=3)
    startup = [space.decode(startup_point(ref, k)) for k in range(20)]

    def f(p: Mapping[str, Any]) -> float:
        return sum((v - 0.3) ** 2 for v in p.values())

    for k, expected in ((1, 10), (4, 10), (8, 10), (12, 14)):
        made = [p for p, _ in _run_in_flight(GPTuner(space, seed=3), f, k, 20)]
        n_startup = next(i for i, p in enumerate(made) if p != startup[i])
        assert n_startup == expected, k
    tuner = GPTuner(space, seed=3)
    for p in startup[:2]:
        tuner.report_result(p, f(p))
    for p in startup[2:10]:
        tuner.add_pending(p)
    assert tuner.suggest() == startup[10]  # 2 observed: still too few for the model


def test_a_rebuilt_tuner_with_pending_points_suggests_the_same() -> None:
    space = SearchSpace({"x": Float(0, 1), "y": Float(0, 1)})
    tuner = GPTuner(space, seed=5)
    made = _run_in_flight(tuner, _slope, 4, 25)
    done = [o.params for o in tuner.observations]
    rebuilt = GPTuner(space, seed=5)
    for p in done:
        rebuilt.report_result(p, _slope(p))
    for p in tuner.pending:
        rebuilt.add_pending(p)
    assert len(made) == 25 and rebuilt.suggest() == tuner.suggest()


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


# --- cost that grows slowly, and the local phase (issue 17) ----------------------------------
def test_anchor_counts_never_decrease_and_thin_out_with_the_history() -> None:
    counts = [anchor_count(n) for n in range(1, 400)]
    assert all(a <= b for a, b in itertools.pairwise(counts))
    assert anchor_count(47) == 45 and anchor_count(99) == 95 and anchor_count(199) == 190
    assert anchor_count(239) == 220 and len(set(counts[199:])) == 10  # every 20 from 200


def test_trust_length_follows_successes_and_failures() -> None:
    dim = 2  # 4 failures in a row halve the length, 3 successes in a row double it
    start = np.array([5.0])
    assert trust_length(start, 1, dim) == 0.8
    assert trust_length(np.concatenate([start, [6.0] * 4]), 1, dim) == 0.4
    assert trust_length(np.concatenate([start, [4.0, 3.0, 2.0]]), 1, dim) == 1.6
    assert trust_length(np.concatenate([start, [4.0, 3.0, 2.0, 1.0, 0.5, 0.2]]), 1, dim) == 1.6
    # halved 7 times it falls below 2^-7 and starts again at 0.8
    assert trust_length(np.concatenate([start, [6.0] * 24]), 1, dim) == 0.8 * 0.5**6
    assert trust_length(np.concatenate([start, [6.0] * 28]), 1, dim) == 0.8


def _in_local_phase(seed: int) -> GPTuner:
    """A 2-D GP tuner told of 100 random trials of a bowl centred at (0.3, 0.6): in its local
    phase (from local_from(2) = 20), with a local model of the 50 nearest to the best."""
    rng = np.random.default_rng(seed)
    tuner = GPTuner(SearchSpace({"a": Float(0, 1), "b": Float(0, 1)}), seed=seed)
    for a, b in rng.random((5 * local_from(2), 2)):
        tuner.report_result({"a": a, "b": b}, (a - 0.3) ** 2 + (b - 0.6) ** 2)
    return tuner


def test_local_phase_searches_near_the_incumbent_and_rebuilds_identically() -> None:
    tuner = _in_local_phase(0)
    assert tuner.best is not None
    inc = np.array([tuner.best.params["a"], tuner.best.params["b"]])
    first = tuner.suggest()
    assert first is not None
    # the trust region starts at side 0.8 x (l_j / geomean l) around the incumbent
    assert np.abs(np.array([first["a"], first["b"]]) - inc).max() < 0.8
    rebuilt = _in_local_phase(0)
    assert rebuilt.suggest() == first


def test_local_phase_spreads_pending_points() -> None:
    tuner = _in_local_phase(1)
    pts = np.array([[p["a"], p["b"]] for p in (tuner.suggest() for _ in range(4)) if p])
    assert len(pts) == 4
    gaps = np.abs(pts[:, None, :] - pts[None, :, :]).max(axis=2) + np.eye(4)
    assert gaps.min() > 1e-4


def test_local_subset_is_the_nearest_points_to_the_best() -> None:
    X = np.array([[0.0, 0.0], [0.9, 0.9], [0.1, 0.0], [0.5, 0.5], [0.0, 1.0]])
    loss = np.array([1.0, 5.0, 0.5, 2.0, 3.0])
    assert local_subset(X, loss, np.array([False, False]), 3).tolist() == [0, 2, 3]
    # a categorical coordinate that differs counts as distance 1
    assert local_subset(X, loss, np.array([False, True]), 2).tolist() == [0, 2]

    # with the search box: also the rows inside it of another category, nearest first
    box = (np.array([0.0, 0.0]), np.array([0.6, 0.0]))  # row 1 (x = 0.9) is outside
    assert local_subset(X, loss, np.array([False, True]), 2, box=box).tolist() == [0, 2, 3, 4]


def test_the_hamming_ball_follows_the_trust_region() -> None:
    assert [hamming_radius(length, 2) for length in (1.6, 0.8, 0.4, 0.2)] == [2, 2, 1, 0]
    rng = np.random.default_rng(0)
    cat = np.array([False, True, True, True])
    centre = np.array([0.5, 0.1, 0.1, 0.1])
    U = rng.random((200, 4))
    for radius in (0, 1, 2):
        out = within_hamming(U, centre, cat, radius, rng)
        assert (np.abs(out[:, cat] - centre[cat]) > 1e-9).sum(axis=1).max() <= radius
        assert np.array_equal(out[:, ~cat], U[:, ~cat])  # ordered coordinates untouched
        kept = (np.abs(U[:, cat] - centre[cat]) > 1e-9).sum(axis=1) <= radius
        assert np.array_equal(out[kept], U[kept])  # rows inside the ball unchanged


def test_a_shrunk_local_phase_keeps_the_incumbents_category() -> None:
    """Regression (digits MLP, issue 17): with the trust region shrunk, EI went to the other
    category of the tiny box, whose observations never entered the local model, so the same
    point was suggested again and again."""
    space = SearchSpace({"x": Float(0, 1), "y": Float(0, 1), "opt": Categorical(["a", "b"])})

    def f(p: Mapping[str, Any]) -> float:
        return (p["x"] - 0.3) ** 2 + (p["y"] - 0.6) ** 2 + (0.0 if p["opt"] == "a" else 0.5)

    tuner = GPTuner(space, seed=0)
    rng = np.random.default_rng(1)
    best = {"x": 0.3, "y": 0.6, "opt": "a"}
    tuner.report_result(best, f(best))
    for i in range(130):  # no improvement after the best: the trust region shrinks
        p = {"x": float(rng.random()), "y": float(rng.random()), "opt": "ab"[i % 2]}
        tuner.report_result(p, f(p))
    assert tuner.local_phase
    seen = []
    for _ in range(6):
        p = tuner.suggest()
        assert p is not None
        assert p["opt"] == "a"
        seen.append((round(p["x"], 6), round(p["y"], 6)))
        tuner.report_result(p, f(p))
    assert len(set(seen)) == len(seen)


def test_the_first_point_is_the_centre_then_sobol_points() -> None:
    space = SearchSpace({"lr": Float(1e-4, 1e-0, log=True), "x": Float(-5, 5), "n": Int(1, 9)})
    tuner = GPTuner(space, seed=3)
    first = tuner.suggest()
    assert first == pytest.approx({"lr": 1e-2, "x": 0.0, "n": 5})
    assert first is not None
    tuner.report_result(first, 1.0)
    second = tuner.suggest()
    assert second is not None
    # the Sobol' sequence follows from its own first point
    assert second == space.decode(tuner._startup.point(0))


def test_the_local_phase_starts_at_20_completed_trials_on_continuous_spaces() -> None:
    for dim in (2, 20):
        tuner = GPTuner(SearchSpace({f"x{i}": Float(0, 1) for i in range(dim)}), seed=0)
        rng = np.random.default_rng(dim)
        for k, x in enumerate(rng.random((20, dim))):
            assert not tuner.local_phase
            tuner.report_result({f"x{i}": v for i, v in enumerate(x)}, float(k))
        assert tuner.local_phase


def test_spaces_with_integers_or_choices_start_the_local_phase_later() -> None:
    floats = {"a": Float(0, 1), "b": Float(1e-4, 1, log=True)}
    assert is_continuous(SearchSpace(floats))
    assert not is_continuous(SearchSpace({**floats, "n": Int(1, 4)}))
    assert not is_continuous(SearchSpace({**floats, "c": Categorical(["x", "y"])}))
    assert local_from(3, True) == 20 and local_from(3, False) == 100
    tuner = GPTuner(SearchSpace({**floats, "n": Int(1, 4)}), seed=0)
    for k in range(99):
        tuner.report_result({"a": k / 99, "b": 0.5, "n": 1 + k % 4}, float(k))
    assert not tuner.local_phase
