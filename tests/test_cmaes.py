"""CMAESTuner specifics: generations, parallel workers, replay from history, rankings."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

import pytest

from hpo_lightning import Categorical, Float, Int, SearchSpace, TrialState
from hpo_lightning.exceptions import MissingDependencyError, UserInputError
from hpo_lightning.tuners import CMAESTuner, Observation, make_tuner
from hpo_lightning.tuners._cmaes import tell_values

SPACE = SearchSpace({f"x{i}": Float(-3, 3) for i in range(4)})


def bowl(p: Mapping[str, Any]) -> float:
    return sum((p[f"x{i}"] - 0.5 * i) ** 2 for i in range(4))


def run(tuner: Any, n: int) -> float:
    best = math.inf
    for _ in range(n):
        p = tuner.suggest()
        v = bowl(p)
        tuner.report_result(p, v)
        best = min(best, v)
    return best


def test_cmaes_beats_random_search_on_every_seed_of_a_fixed_set() -> None:
    # a sign test over 6 seeds: P(6 wins | no difference) = 1/64
    for seed in range(6):
        cma = run(CMAESTuner(SPACE, seed=seed), 120)
        rnd = run(make_tuner("random", SPACE, seed=seed), 120)
        assert cma < rnd, (seed, cma, rnd)


def test_a_generation_is_told_once_population_size_points_are_reported() -> None:
    tuner = CMAESTuner(SPACE, seed=0, population_size=5)
    run(tuner, 4)
    assert tuner.generation == 0
    run(tuner, 1)
    assert tuner.generation == 1


def test_more_workers_than_the_population_get_distinct_points() -> None:
    tuner = CMAESTuner(SPACE, seed=0, population_size=4)
    in_flight = [tuner.suggest() for _ in range(10)]
    assert len({tuple(sorted(p.items())) for p in in_flight}) == 10
    for p in in_flight:
        tuner.report_result(p, bowl(p))
    # any 4 reported points complete the generation; later ones of it are history only
    assert tuner.generation == 1 and len(tuner.observations) == 10


def test_a_tuner_rebuilt_by_replaying_its_history_continues_identically() -> None:
    mixed = SearchSpace(
        {"a": Float(0, 1), "b": Int(1, 64, log=True), "c": Categorical(["u", "v", "w"])}
    )
    original = CMAESTuner(mixed, seed=3)
    history = []
    for _ in range(23):
        p = original.suggest()
        history.append(p)
        original.report_result(p, p["a"] + math.log(p["b"]) + (p["c"] == "v"))
    rebuilt = CMAESTuner(mixed, seed=3)
    for p, obs in zip(history, original.observations):
        rebuilt.report_result(p, obs.value)
    assert rebuilt.generation == original.generation > 0
    assert [original.suggest() for _ in range(4)] == [rebuilt.suggest() for _ in range(4)]


def test_reports_of_foreign_params_are_kept_but_do_not_move_the_distribution() -> None:
    tuner = CMAESTuner(SPACE, seed=0, population_size=4)
    for i in range(8):
        tuner.report_result({f"x{j}": -2.9 + 0.01 * i for j in range(4)}, 1.0)
    assert tuner.generation == 0 and len(tuner.observations) == 8
    run(tuner, 4)
    assert tuner.generation == 1


def obs(loss: float, state: TrialState = TrialState.COMPLETE, step: int | None = None) -> Any:
    return Observation(params={}, value=loss, state=state, step=step, loss=loss)


def test_tell_values_rank_complete_then_pruned_deeper_first_then_failed() -> None:
    results = [
        obs(math.inf, TrialState.FAILED),
        obs(0.1, TrialState.PRUNED, step=2),
        obs(5.0),
        obs(0.2, TrialState.PRUNED, step=9),
        obs(3.0),
    ]
    values = tell_values(results)
    order = sorted(range(5), key=values.__getitem__)
    assert order == [4, 2, 3, 1, 0]
    assert all(math.isfinite(v) for v in values)


def test_missing_cmaes_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cmaes", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'hpo_lightning\[cmaes\]'"):
        CMAESTuner(SPACE)


@pytest.mark.parametrize(
    ("option", "value"),
    [("sigma0", 0.0), ("sigma0", 2.0), ("population_size", 1), ("surrogate", "yes")],
)
def test_options_are_validated_with_a_message(option: str, value: Any) -> None:
    with pytest.raises(UserInputError, match=option):
        make_tuner("cmaes", SPACE, **{option: value})


# --- the lq surrogate (lq-CMA-ES) ---------------------------------------------------


def quadratic(p: Mapping[str, Any]) -> float:
    # an ill-conditioned rotated-ish quadratic: the full quadratic model fits it exactly
    x = [p[f"x{i}"] for i in range(4)]
    return (x[0] + x[1]) ** 2 + 100 * (x[1] - 0.5) ** 2 + 10 * x[2] ** 2 + x[3] ** 2


def generations_after(tuner: CMAESTuner, f: Any, n: int) -> int:
    for _ in range(n):
        p = tuner.suggest()
        tuner.report_result(p, f(p))
    return tuner.generation


def test_the_surrogate_shortens_generations_on_a_quadratic() -> None:
    for seed in range(3):
        lq = CMAESTuner(SPACE, seed=seed, population_size=8)
        plain = CMAESTuner(SPACE, seed=seed, population_size=8, surrogate=False)
        lq_gens = generations_after(lq, quadratic, 160)
        assert generations_after(plain, quadratic, 160) == 20
        assert lq_gens >= 40 or lq.restarts > 0, (seed, lq_gens)
        assert lq.best.loss < plain.best.loss


def test_a_random_objective_gets_full_generations() -> None:
    import numpy as np

    noise = np.random.default_rng(0)
    tuner = CMAESTuner(SPACE, seed=0, population_size=8)
    assert generations_after(tuner, lambda p: float(noise.random()), 160) == 20


def test_a_surrogate_tuner_rebuilt_by_replaying_its_history_continues_identically() -> None:
    space = SearchSpace({"a": Float(-2, 2), "b": Float(-2, 2), "n": Int(-20, 20)})
    original = CMAESTuner(space, seed=5)
    history = []
    for _ in range(97):
        p = original.suggest()
        history.append(p)
        original.report_result(p, (p["a"] - p["b"]) ** 2 + 5 * p["b"] ** 2 + (p["n"] / 10) ** 2)
    assert original.generation > 97 // 6  # short generations (population 6 in 3-d)
    rebuilt = CMAESTuner(space, seed=5)
    for p, obs in zip(history, original.observations):
        rebuilt.report_result(p, obs.value)
    assert rebuilt.generation == original.generation
    assert [original.suggest() for _ in range(6)] == [rebuilt.suggest() for _ in range(6)]


def test_parallel_workers_get_the_best_ranked_points_and_late_reports_are_kept() -> None:
    tuner = CMAESTuner(SPACE, seed=1, population_size=8)
    generations_after(tuner, quadratic, 80)
    in_flight = [tuner.suggest() for _ in range(3)]
    assert len({tuple(sorted(p.items())) for p in in_flight}) == 3
    before = tuner.generation
    for p in in_flight:  # the first report may complete the generation: the rest are late
        tuner.report_result(p, quadratic(p))
    assert tuner.generation >= before and len(tuner.observations) == 83
    assert generations_after(tuner, quadratic, 40) > before


def test_a_pruned_or_failed_report_makes_the_generation_a_full_one() -> None:
    for state in (TrialState.PRUNED, TrialState.FAILED):
        tuner = CMAESTuner(SPACE, seed=2, population_size=8)
        generations_after(tuner, quadratic, 80)
        gen = tuner.generation
        while tuner.generation == gen:  # finish the current generation
            generations_after(tuner, quadratic, 1)
        gen = tuner.generation
        p = tuner.suggest()
        if state is TrialState.PRUNED:
            tuner.report_result(p, quadratic(p), state=state, step=1)
        else:
            tuner.report_result(p, math.nan, state=state)
        generations_after(tuner, quadratic, 6)
        assert tuner.generation == gen  # 7 of 8 reported: not told early
        generations_after(tuner, quadratic, 1)
        assert tuner.generation == gen + 1


def test_the_lq_model_fits_a_full_quadratic_and_grows_with_the_data() -> None:
    import numpy as np

    from hpo_lightning.tuners._lq_surrogate import LQModel, kendall_tau

    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    hess = a @ a.T

    def f(x: np.ndarray) -> np.ndarray:
        return np.einsum("ni,ij,nj->n", x - 0.3, hess, x - 0.3) + 2.0

    center = np.full(3, 0.5)
    assert LQModel.fit(rng.random((4, 3)), np.zeros(4), center, 0.1) is None  # < 1.1 * 4
    x = rng.random((5, 3))
    line = LQModel.fit(x, f(x), center, 0.1)
    assert line is not None and line.kind == 0  # 5 points: only the linear model
    x = rng.random((12, 3))
    model = LQModel.fit(x, f(x), center, 0.1)
    assert model is not None and model.kind == 2  # 10 coefficients, 12 points
    test = rng.random((20, 3))
    assert np.allclose(model.predict(test), f(test))
    y = np.arange(6.0)
    assert kendall_tau(y, y) == 1.0 and kendall_tau(y, -y) == -1.0
