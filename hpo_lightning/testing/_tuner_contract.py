"""The tuner contract (see ``hpo_lightning/tuners/_base.py``), as a reusable test class.

Subclass :class:`TunerContract` in a test module and provide a ``tuner_factory`` fixture: a
callable ``factory(space, *, mode="min", seed=None, max_trials=None) -> HyperparameterTuner``
(parametrise the fixture to check several tuners). A tuner that cannot search a space (grid
search on continuous domains) must refuse it with InvalidSpaceError when built; the checks on
that space are then skipped for it, and run on the discrete space instead.

Example::

    @pytest.fixture(params=tuner_names())
    def tuner_factory(request):
        return functools.partial(make_tuner, request.param)

    class TestEveryTuner(TunerContract):
        pass
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

from hpo_lightning import (
    Categorical,
    Conditional,
    Float,
    HyperparameterTuner,
    Int,
    SearchSpace,
    TrialState,
)
from hpo_lightning.exceptions import InvalidMetricError, InvalidSpaceError

TunerFactory = Callable[..., HyperparameterTuner]

#: every kind of domain: linear/log floats, stepped/log ints, categoricals of mixed scalar types
MIXED_SPACE = SearchSpace(
    {
        "lr": Float(1e-5, 1e-1, log=True),
        "dropout": Float(0.0, 0.5),
        "hidden": Int(16, 256, log=True),
        "batch": Int(16, 128, step=16),
        "layers": Int(1, 4),
        "optimizer": Categorical(["adam", "sgd", "rmsprop"]),
        "flag": Categorical([True, False, None, 0.5]),
    }
)
#: a discrete space every tuner (grid included) accepts, 4 * 3 * 8 * 3 = 288 points
DISCRETE_SPACE = SearchSpace(
    {
        "batch": Int(16, 64, step=16),
        "hidden": Int(8, 32, log=True),
        "layers": Int(1, 8),
        "optimizer": Categorical(["adam", "sgd", "rmsprop"]),
    }
)
CONTINUOUS_SPACE = SearchSpace({"x": Float(-5.0, 5.0), "y": Float(1e-3, 1e3, log=True)})
#: a conditional space: choices with sub-spaces (nested), a `when` on an int, shared children
CONDITIONAL_SPACE = SearchSpace(
    {
        "optimizer": Categorical(
            {
                "adam": {"beta1": Float(0.8, 0.999), "amsgrad": [True, False]},
                "sgd": {
                    "momentum": Float(0.0, 0.99),
                    "nesterov": Categorical({True: {"dampening": Float(0.0, 0.5)}, False: None}),
                },
                "rmsprop": None,
            }
        ),
        "lr": Float(1e-5, 1e-1, log=True),
        "layers": Int(1, 3),
        "width2": Conditional(Int(8, 64, log=True), when={"layers": [2, 3]}),
        "width3": Conditional(Int(8, 64, step=8), when={"layers": 3}),
    }
)
#: a discrete conditional space (grid search enumerates its branches: 2*3 + 1*2 + 2 = 10 points)
CONDITIONAL_DISCRETE_SPACE = SearchSpace(
    {
        "model": Categorical(
            {
                "svc": {"kernel": ["rbf", "linear"], "c": [0.1, 1.0, 10.0]},
                "forest": {"depth": [2, 8]},
            }
        ),
        "scale": Conditional(Categorical([True, False]), when={"model": "forest"}),
    }
)


def expected_active(space: SearchSpace, params: Mapping[str, Any]) -> set[str]:
    """The names whose conditions hold for params, worked out from the conditions directly."""
    active: set[str] = set()
    for name in space.names:  # parents come before children
        cond = space.conditions.get(name)
        if cond is None or (cond.parent in active and params[cond.parent] in cond.values):
            active.add(name)
    return active


def check_conditional_point(space: SearchSpace, params: Mapping[str, Any]) -> None:
    """Active keys exactly those whose conditions hold, every value inside its domain."""
    assert set(params) == expected_active(space, params), params
    for name, value in params.items():
        assert space[name].contains(value), (name, value)
    space.validate(params)


def objective(params: Mapping[str, Any]) -> float:
    """A deterministic function of any params dict (a smooth bowl over the encoded cube)."""
    total = 0.0
    for i, (_name, value) in enumerate(sorted(params.items())):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            x = float(value)
        else:  # a stable number for a categorical choice (str's hash() varies per process)
            x = (sum(map(ord, repr(value))) % 7) / 7
        total += (math.log1p(abs(x)) - 0.3 * (i + 1)) ** 2
    return total


def run(tuner: HyperparameterTuner, n: int, fn: Callable[[Mapping[str, Any]], float] = objective):
    """Suggest and report n times; return the suggestions."""
    out = []
    for _ in range(n):
        params = tuner.suggest()
        assert params is not None
        out.append(params)
        tuner.report_result(params, fn(params))
    return out


class TunerContract:
    """The checks every tuner must pass. Needs a ``tuner_factory`` fixture."""

    # --- helpers ------------------------------------------------------------------------------
    @staticmethod
    def build(factory: TunerFactory, space: SearchSpace, **kw: Any) -> HyperparameterTuner:
        try:
            return factory(space, **kw)
        except InvalidSpaceError as exc:
            if space.is_discrete:
                raise
            pytest.skip(f"the tuner refuses continuous spaces: {exc}")

    # --- stays inside the space ---------------------------------------------------------------
    @pytest.mark.parametrize("space", [MIXED_SPACE, DISCRETE_SPACE], ids=["mixed", "discrete"])
    def test_suggestions_stay_inside_the_space(
        self, tuner_factory: TunerFactory, space: SearchSpace
    ) -> None:
        tuner = self.build(tuner_factory, space, seed=3)
        for params in run(tuner, 40):
            space.validate(params)  # names, bounds, int steps, log ints, categorical choices
            for name, domain in space.items():
                if isinstance(domain, Int):
                    assert type(params[name]) is int, (name, params[name])
                elif isinstance(domain, Float):
                    assert type(params[name]) is float, (name, params[name])

    @pytest.mark.parametrize(
        "space", [CONDITIONAL_SPACE, CONDITIONAL_DISCRETE_SPACE], ids=["mixed", "discrete"]
    )
    def test_conditional_suggestions_are_valid(
        self, tuner_factory: TunerFactory, space: SearchSpace
    ) -> None:
        tuner = self.build(tuner_factory, space, seed=3)
        seen = run(tuner, 30 if space is CONDITIONAL_SPACE else 10)
        for params in seen:
            check_conditional_point(space, params)
        assert len({p[space.names[0]] for p in seen}) > 1  # more than one branch is tried
        in_flight = [tuner.suggest() for _ in range(3)]
        for params in in_flight:
            if params is not None:  # the discrete space's grid is exhausted after 10
                check_conditional_point(space, params)

    def test_name_is_a_non_empty_string(self, tuner_factory: TunerFactory) -> None:
        tuner = self.build(tuner_factory, DISCRETE_SPACE, seed=0)
        assert isinstance(tuner.name, str) and tuner.name
        assert tuner.name in repr(tuner) or type(tuner).__name__ in repr(tuner)

    # --- reproducibility ----------------------------------------------------------------------
    @pytest.mark.parametrize("space", [MIXED_SPACE, DISCRETE_SPACE], ids=["mixed", "discrete"])
    def test_same_seed_gives_the_same_sequence(
        self, tuner_factory: TunerFactory, space: SearchSpace
    ) -> None:
        a = run(self.build(tuner_factory, space, seed=11), 30)
        b = run(self.build(tuner_factory, space, seed=11), 30)
        assert a == b

    def test_different_seeds_give_different_sequences(self, tuner_factory: TunerFactory) -> None:
        a = run(self.build(tuner_factory, CONTINUOUS_SPACE, seed=1), 15)
        b = run(self.build(tuner_factory, CONTINUOUS_SPACE, seed=2), 15)
        assert a != b

    def test_seed_none_draws_a_seed_that_reproduces(self, tuner_factory: TunerFactory) -> None:
        first = self.build(tuner_factory, DISCRETE_SPACE)
        assert isinstance(first.seed, int) and first.seed >= 0
        again = self.build(tuner_factory, DISCRETE_SPACE, seed=first.seed)
        assert run(first, 12) == run(again, 12)

    def test_a_tuner_rebuilt_from_its_history_continues_the_sequence(
        self, tuner_factory: TunerFactory
    ) -> None:
        # the k-th suggestion depends only on (seed, history): a resumed sweep continues
        original = self.build(tuner_factory, DISCRETE_SPACE, seed=5)
        history = run(original, 15)
        rebuilt = self.build(tuner_factory, DISCRETE_SPACE, seed=5)
        for params in history:
            rebuilt.report_result(params, objective(params))
        assert rebuilt.n_known == original.n_known == 15
        assert [original.suggest() for _ in range(3)] == [rebuilt.suggest() for _ in range(3)]

    def test_max_mode_is_min_mode_of_the_negated_metric(self, tuner_factory: TunerFactory) -> None:
        lo = run(self.build(tuner_factory, MIXED_SPACE, seed=4, mode="min"), 25)
        hi = run(
            self.build(tuner_factory, MIXED_SPACE, seed=4, mode="max"), 25, lambda p: -objective(p)
        )
        assert lo == hi

    # --- exhaustion ---------------------------------------------------------------------------
    def test_max_trials_exhausts_with_none(self, tuner_factory: TunerFactory) -> None:
        tuner = self.build(tuner_factory, DISCRETE_SPACE, seed=0, max_trials=5)
        run(tuner, 5)
        assert tuner.suggest() is None
        assert tuner.suggest() is None  # stays exhausted
        assert len(tuner.observations) == 5 and tuner.pending == []

    def test_pending_suggestions_count_against_max_trials(
        self, tuner_factory: TunerFactory
    ) -> None:
        tuner = self.build(tuner_factory, DISCRETE_SPACE, seed=0, max_trials=3)
        got = [tuner.suggest() for _ in range(4)]
        assert got[3] is None and all(p is not None for p in got[:3])
        assert len(tuner.pending) == 3

    # --- bad metrics --------------------------------------------------------------------------
    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan")])
    def test_non_finite_metric_is_recorded_failed(
        self, tuner_factory: TunerFactory, bad: float
    ) -> None:
        tuner = self.build(tuner_factory, MIXED_SPACE, seed=0)
        # every third trial diverges, well past any start-up phase
        for i, params in enumerate(run_with(tuner, 24, lambda i, p: bad if i % 3 == 0 else 1.0)):
            assert MIXED_SPACE.contains(params), i
        states = [o.state for o in tuner.observations]
        assert states.count(TrialState.FAILED) == 8
        assert all(s is TrialState.COMPLETE for s in states if s is not TrialState.FAILED)
        assert tuner.best is not None and tuner.best.value == 1.0
        assert MIXED_SPACE.contains(tuner.suggest() or {})

    def test_only_failed_trials_still_suggest(self, tuner_factory: TunerFactory) -> None:
        tuner = self.build(tuner_factory, MIXED_SPACE, seed=0)
        run_with(tuner, 20, lambda i, p: math.nan)
        assert tuner.best is None
        assert MIXED_SPACE.contains(tuner.suggest() or {})

    @pytest.mark.parametrize("bad", ["0.5", np.array([0.1, 0.2]), [0.1], True, b"1"], ids=repr)
    def test_non_scalar_metric_raises_and_changes_nothing(
        self, tuner_factory: TunerFactory, bad: Any
    ) -> None:
        tuner = self.build(tuner_factory, DISCRETE_SPACE, seed=0)
        params = tuner.suggest()
        assert params is not None
        with pytest.raises(InvalidMetricError, match="metric"):
            tuner.report_result(params, bad)
        assert tuner.observations == [] and tuner.pending == [params]

    def test_one_element_array_metric_is_accepted(self, tuner_factory: TunerFactory) -> None:
        tuner = self.build(tuner_factory, DISCRETE_SPACE, seed=0)
        params = tuner.suggest()
        assert params is not None
        tuner.report_result(params, np.array([0.25]))
        assert tuner.best is not None and tuner.best.value == 0.25

    # --- in flight ----------------------------------------------------------------------------
    @pytest.mark.parametrize("warmup", [0, 20])
    def test_pending_suggestions_are_never_identical(
        self, tuner_factory: TunerFactory, warmup: int
    ) -> None:
        tuner = self.build(tuner_factory, CONTINUOUS_SPACE, seed=7)
        run(tuner, warmup)
        check_eight_distinct_in_flight(tuner, warmup)

    def test_add_pending_is_known_until_reported(self, tuner_factory: TunerFactory) -> None:
        other_worker = self.build(tuner_factory, DISCRETE_SPACE, seed=1)
        theirs = other_worker.suggest()
        assert theirs is not None
        tuner = self.build(tuner_factory, DISCRETE_SPACE, seed=1)
        tuner.add_pending(theirs)
        assert tuner.pending == [theirs] and tuner.n_known == 1
        mine = tuner.suggest()
        assert mine is not None and mine != theirs
        tuner.report_result(theirs, 0.5)
        assert tuner.pending == [mine] and tuner.n_known == 2
        assert [o.params for o in tuner.observations] == [theirs]

    def test_report_of_unsuggested_params_is_recorded(self, tuner_factory: TunerFactory) -> None:
        tuner = self.build(tuner_factory, DISCRETE_SPACE, seed=0)
        params = {"batch": 32, "hidden": 8, "layers": 2, "optimizer": "sgd"}
        tuner.report_result(params, 3.0)
        assert tuner.best is not None and tuner.best.params == params and tuner.pending == []


def check_eight_distinct_in_flight(tuner: HyperparameterTuner, known: int) -> None:
    """Eight suggestions in a row, none reported: all different, all pending."""
    in_flight = [tuner.suggest() for _ in range(8)]
    keys = {tuple(sorted(p.items())) for p in in_flight if p is not None}
    assert len(keys) == 8
    assert len(tuner.pending) == 8 and tuner.n_known == known + 8


def run_with(
    tuner: HyperparameterTuner, n: int, metric: Callable[[int, Mapping[str, Any]], float]
) -> list[dict[str, Any]]:
    """Like :func:`run`, with the metric of the i-th trial given by ``metric(i, params)``."""
    out = []
    for i in range(n):
        params = tuner.suggest()
        assert params is not None
        out.append(params)
        tuner.report_result(params, metric(i, params))
    return out


# --- several objectives ---------------------------------------------------------------------------
def objectives(params: Mapping[str, Any]) -> tuple[float, float]:
    """Two conflicting deterministic objectives of any params dict."""
    f = objective(params)
    return f, 1.0 / (1.0 + f) + 0.1 * (sum(map(ord, repr(sorted(params.items())))) % 5)


def run_mo(
    tuner: HyperparameterTuner,
    n: int,
    fn: Callable[[Mapping[str, Any]], tuple[float, float]] = objectives,
) -> list[dict[str, Any]]:
    """Suggest and report n times with two objectives; return the suggestions."""
    out = []
    for i in range(n):
        params = tuner.suggest()
        assert params is not None
        out.append(params)
        tuner.report_result(params, fn(params), violation=0.5 if i % 4 == 3 else 0.0)
    return out


class MultiObjectiveTunerContract:
    """The checks every tuner that accepts several objectives must pass, with two objectives.

    Needs a ``tuner_factory`` fixture (as :class:`TunerContract`); the checks pass ``mode``.
    """

    MODES = ("min", "min")

    def build(self, factory: TunerFactory, space: SearchSpace, **kw: Any) -> HyperparameterTuner:
        kw.setdefault("mode", self.MODES)
        return TunerContract.build(factory, space, **kw)

    @pytest.mark.parametrize(
        "space", [MIXED_SPACE, DISCRETE_SPACE, CONDITIONAL_SPACE], ids=["mixed", "discrete", "cond"]
    )
    def test_suggestions_stay_inside_the_space(
        self, tuner_factory: TunerFactory, space: SearchSpace
    ) -> None:
        tuner = self.build(tuner_factory, space, seed=3)
        assert tuner.n_objectives == 2
        for params in run_mo(tuner, 40):
            check_conditional_point(space, params)
        assert len(tuner.pareto) >= 1

    def test_same_seed_same_sequence_and_rebuilt_tuner_continues(
        self, tuner_factory: TunerFactory
    ) -> None:
        a = self.build(tuner_factory, MIXED_SPACE, seed=11)
        history = run_mo(a, 30)
        assert run_mo(self.build(tuner_factory, MIXED_SPACE, seed=11), 30) == history
        rebuilt = self.build(tuner_factory, MIXED_SPACE, seed=11)
        for i, params in enumerate(history):
            rebuilt.report_result(params, objectives(params), violation=0.5 if i % 4 == 3 else 0.0)
        assert [a.suggest() for _ in range(3)] == [rebuilt.suggest() for _ in range(3)]

    def test_max_modes_are_min_modes_of_the_negated_metrics(
        self, tuner_factory: TunerFactory
    ) -> None:
        lo = run_mo(self.build(tuner_factory, MIXED_SPACE, seed=4), 25)
        hi = run_mo(
            self.build(tuner_factory, MIXED_SPACE, seed=4, mode=("max", "max")),
            25,
            lambda p: (-objectives(p)[0], -objectives(p)[1]),
        )
        assert lo == hi

    def test_non_finite_objectives_fail_and_wrong_lengths_raise(
        self, tuner_factory: TunerFactory
    ) -> None:
        tuner = self.build(tuner_factory, MIXED_SPACE, seed=0, max_trials=30)
        run_mo(tuner, 24, lambda p: (math.nan, 1.0) if len(str(p)) % 3 == 0 else objectives(p))
        failed = [o for o in tuner.observations if o.state is TrialState.FAILED]
        assert all(o.losses == (math.inf, math.inf) for o in failed)
        params = tuner.suggest()
        assert params is not None and MIXED_SPACE.contains(params)
        with pytest.raises(InvalidMetricError, match="2 objectives"):
            tuner.report_result(params, [1.0, 2.0, 3.0])
        assert len(tuner.observations) == 24 and tuner.pending == [params]

    def test_only_failed_trials_still_suggest(self, tuner_factory: TunerFactory) -> None:
        tuner = self.build(tuner_factory, MIXED_SPACE, seed=0)
        run_mo(tuner, 20, lambda p: (math.nan, math.nan))
        assert tuner.pareto == [] and MIXED_SPACE.contains(tuner.suggest() or {})

    @pytest.mark.parametrize("warmup", [0, 25])
    def test_pending_suggestions_are_never_identical(
        self, tuner_factory: TunerFactory, warmup: int
    ) -> None:
        tuner = self.build(tuner_factory, CONTINUOUS_SPACE, seed=7)
        run_mo(tuner, warmup)
        check_eight_distinct_in_flight(tuner, warmup)
