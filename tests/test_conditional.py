"""Conditional search spaces: the YAML/Python shapes, validation, grid, every tuner (property
tests), and inactive parameters in the store and its export."""

from __future__ import annotations

import csv
import io
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpo_lightning import Categorical, Conditional, Float, Int, SearchSpace, make_tuner, tuner_names
from hpo_lightning.exceptions import InvalidSpaceError
from hpo_lightning.testing._tuner_contract import CONDITIONAL_SPACE, check_conditional_point
from hpo_lightning.tuners import choose_tuner

TESTS = Path(__file__).parent

YAML_SPACE = """
optimizer:
  type: categorical
  choices:
    adam: {beta1: {type: float, low: 0.8, high: 0.999}}
    sgd:
      momentum: {type: float, low: 0.0, high: 0.99}
      nesterov: [true, false]
    rmsprop:
lr: {type: float, low: 1e-5, high: 1e-1, log: true}
layers: {type: int, low: 1, high: 3}
width2: {type: int, low: 8, high: 64, when: {layers: [2, 3]}}
"""


# --- shapes ------------------------------------------------------------------------------------
def test_yaml_and_python_shapes_build_the_same_flat_space() -> None:
    from_yaml = SearchSpace.from_dict(yaml.safe_load(YAML_SPACE))
    from_python = SearchSpace(
        {
            "optimizer": Categorical(
                {
                    "adam": {"beta1": Float(0.8, 0.999)},
                    "sgd": {"momentum": Float(0.0, 0.99), "nesterov": [True, False]},
                    "rmsprop": None,
                }
            ),
            "lr": Float(1e-5, 1e-1, log=True),
            "layers": Int(1, 3),
            "width2": Conditional(Int(8, 64), when={"layers": [2, 3]}),
        }
    )
    assert from_yaml == from_python and from_yaml.is_conditional
    assert from_yaml.names == (
        "optimizer",
        "beta1",
        "momentum",
        "nesterov",
        "lr",
        "layers",
        "width2",
    )
    flat = from_yaml.to_dict()
    assert flat["momentum"]["when"] == {"optimizer": ["sgd"]}
    assert SearchSpace.from_dict(flat) == from_yaml  # the stored shape round-trips
    assert not SearchSpace({"x": Float(0, 1)}).is_conditional


def test_decode_leaves_inactive_parameters_out_and_encode_gives_nan() -> None:
    space = SearchSpace.from_dict(yaml.safe_load(YAML_SPACE))
    params = space.decode([0.5, 0.1, 0.2, 0.9, 0.5, 0.1, 0.9])  # sgd, 1 layer
    assert params == {
        "optimizer": "sgd",
        "momentum": pytest.approx(0.198),
        "nesterov": False,
        "lr": pytest.approx(math.sqrt(1e-5 * 1e-1)),
        "layers": 1,
    }
    u = space.encode(params)
    assert np.isnan(u[[1, 6]]).all() and not np.isnan(np.delete(u, [1, 6])).any()
    assert space.decode(u) == params
    assert space.active_mask(u[None, :]).tolist() == [[True, False, True, True, True, True, False]]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"optimizer": "rmsprop", "lr": 0.01, "layers": 1, "beta1": 0.9}, "'beta1' is given but"),
        ({"optimizer": "adam", "lr": 0.01, "layers": 1}, r"missing \['beta1'\]"),
        ({"optimizer": "rmsprop", "lr": 0.01, "layers": 2}, r"missing \['width2'\]"),
        ({"optimizer": "rmsprop", "lr": 0.01, "layers": 1, "zeta": 1}, r"unexpected \['zeta'\]"),
        ({"optimizer": "adam", "beta1": 2.0, "lr": 0.01, "layers": 1}, "'beta1' = 2.0 is outside"),
    ],
)
def test_validate_names_the_wrong_parameter(params: dict[str, Any], match: str) -> None:
    space = SearchSpace.from_dict(yaml.safe_load(YAML_SPACE))
    with pytest.raises(InvalidSpaceError, match=match):
        space.validate(params)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"x": {"type": "float", "low": 0, "high": 1, "when": {"k": [1]}}}, "parent 'k' is not a"),
        (
            {
                "a": Conditional(Int(0, 3), when={"b": 1}),
                "b": Conditional(Int(0, 3), when={"a": 1}),
            },
            r"conditions form a cycle \(a -> b\)",
        ),
        ({"k": Float(0, 3), "w": Conditional(Float(0, 1), when={"k": 1})}, "categorical or int"),
        ({"k": Int(0, 3), "w": Conditional(Float(0, 1), when={"k": 7})}, "value 7 is not a value"),
        ({"k": Int(0, 3), "w": Conditional(Float(0, 1), when={"k": 1, "j": 2})}, "exactly one"),
        ({"k": Int(0, 3), "w": Conditional(Float(0, 1), when={"k": []})}, "never holds"),
        (
            {"o": Categorical({"a": {"x": Float(0, 1)}, "b": {"x": Float(0, 2)}})},
            "'x' is defined twice",
        ),
        ({"o": {"choices": {"a": 3}}}, "sub-space of choice 'a' must be a mapping"),
        (
            {"o": {"type": "categorical", "choices": {"a": {"x": {"type": "flot"}}}}},
            "parameter 'x': `type` must be one of",
        ),
    ],
)
def test_bad_conditions_are_refused_with_the_parameter_named(spec: Any, match: str) -> None:
    with pytest.raises(InvalidSpaceError, match=match):
        SearchSpace(spec)


def test_a_stored_space_with_sorted_keys_puts_parents_first_again() -> None:
    import json

    space = SearchSpace.from_dict(yaml.safe_load(YAML_SPACE))
    stored = json.loads(json.dumps(space.to_dict(), sort_keys=True))  # beta1 before optimizer
    again = SearchSpace.from_dict(stored)
    assert again == space and set(again.names) == set(space.names)
    names = again.names
    for child, cond in again.conditions.items():
        assert names.index(cond.parent) < names.index(child)
    params = space.decode(np.full(space.dim, 0.3))
    again.validate(params)


def test_a_parameter_shared_by_two_branches_is_one_parameter() -> None:
    space = SearchSpace(
        {"o": Categorical({"a": {"x": Float(0, 1)}, "b": {"x": Float(0, 1)}, "c": None})}
    )
    assert space.conditions["x"].values == ("a", "b")
    assert "x" in space.decode([0.5, 0.5]) and "x" not in space.decode([0.9, 0.5])


def test_grid_enumerates_branches() -> None:
    space = SearchSpace(
        {
            "model": Categorical(
                {"svc": {"c": [0.1, 1.0], "kernel": ["rbf", "lin"]}, "tree": None}
            ),
            "depth": Conditional(Int(1, 3), when={"model": "tree"}),
        }
    )
    grid = list(space.grid())
    assert space.grid_size() == len(grid) == 4 + 3
    assert {"model": "tree", "depth": 2} in grid
    assert all(space.contains(p) for p in grid)
    tuner = make_tuner("grid", space)
    got = list(iter(tuner.suggest, None))
    assert sorted(map(repr, got)) == sorted(map(repr, grid))


def test_auto_on_conditional_spaces_gp_when_small_tpe_otherwise_never_cmaes() -> None:
    assert choose_tuner(CONDITIONAL_SPACE, 30)[0] == "gp"
    assert choose_tuner(CONDITIONAL_SPACE, 1000) == (
        "tpe",
        "a large budget (1000 trials) on a conditional space",
    )
    assert choose_tuner(CONDITIONAL_SPACE, None)[0] == "tpe"
    ints = SearchSpace({"n": Int(1, 3), "w": Conditional(Float(0, 1), when={"n": [2, 3]})})
    assert choose_tuner(ints, 1000)[0] == "tpe"  # no categorical, but conditional: not CMA-ES


# --- property tests: every tuner suggests only valid points -------------------------------------
@st.composite
def conditional_spaces(draw: st.DrawFn) -> SearchSpace:
    """Random trees: categoricals whose choices carry sub-spaces (2 levels), `when` on an int."""
    counter = itertools.count()

    def leaf() -> Any:
        kind = draw(st.sampled_from(["float", "log", "int", "cat"]))
        if kind == "float":
            return Float(-1.0, draw(st.floats(0.5, 10.0)))
        if kind == "log":
            return Float(1e-4, 1.0, log=True)
        if kind == "int":
            return Int(0, draw(st.integers(1, 20)))
        return Categorical(["a", "b", 3][: draw(st.integers(1, 3))])

    def subspace(depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _ in range(draw(st.integers(1, 3))):
            name = f"p{next(counter)}"
            if depth > 0 and draw(st.booleans()):
                n = draw(st.integers(2, 3))
                out[name] = Categorical(
                    {
                        f"c{i}": subspace(depth - 1) if draw(st.booleans()) else None
                        for i in range(n)
                    }
                )
            else:
                out[name] = leaf()
        return out

    spec = subspace(2)
    if draw(st.booleans()):
        parent = f"p{next(counter)}"
        spec[parent] = Int(1, 4)
        values = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True))
        spec[f"p{next(counter)}"] = Conditional(Float(0.0, 1.0), when={parent: values})
    return SearchSpace(spec)


def _tuner(name: str, space: SearchSpace, seed: int) -> Any:
    fast = {"tpe": {"n_startup_trials": 4}, "gp": {"n_startup_trials": 3, "n_candidates": 256}}
    try:
        return make_tuner(name, space, seed=seed, max_trials=200, **fast.get(name, {}))
    except InvalidSpaceError:
        return None  # grid search on a space with floats


def _metric(params: dict[str, Any]) -> float:
    """A deterministic, branch-dependent value."""
    total = 0.0
    for key, value in sorted(params.items()):
        x = float(value) if isinstance(value, (int, float)) else len(str(value))
        total += math.sin(len(key) + x) ** 2
    return total


@pytest.mark.parametrize("name", tuner_names())
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=conditional_spaces(), seed=st.integers(0, 2**16))
def test_every_tuner_suggests_valid_conditional_points(
    name: str, space: SearchSpace, seed: int
) -> None:
    tuner = _tuner(name, space, seed)
    if tuner is None:
        assert not space.is_discrete
        return
    for i in range(14):
        params = tuner.suggest()
        if params is None:  # a small grid is exhausted
            assert name == "grid" and i == space.grid_size()
            return
        check_conditional_point(space, params)
        assert space.decode(space.encode(params)) == params
        tuner.report_result(params, math.nan if i % 5 == 4 else _metric(params))
    for params in [tuner.suggest(), tuner.suggest()]:  # in flight together
        if params is not None:
            check_conditional_point(space, params)


# --- store and export ---------------------------------------------------------------------------
SWEEP = """\
name: cond
objective: sweep_objectives:conditional
monitor: loss
n_trials: 8
seed: 1
tuner: {name: tpe, n_startup_trials: 3}
space:
  optimizer:
    choices:
      sgd: {momentum: {type: float, low: 0.0, high: 0.99}}
      adam: {beta1: {type: float, low: 0.8, high: 0.999}}
"""


@pytest.mark.slow
def test_a_conditional_sweep_stores_only_active_params_and_exports_them_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpo_lightning.cli import main
    from hpo_lightning.storage import open_storage

    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.delenv("HPO_LIGHTNING_STORAGE", raising=False)
    (tmp_path / "cond.yaml").write_text(SWEEP)
    assert main(["sweep", str(tmp_path / "cond.yaml"), "--quiet"]) == 0
    store = open_storage(str(tmp_path / "hpo_lightning.db"))
    trials = store.get_trials(store.get_sweep("cond").id)
    store.close()
    assert len(trials) == 8 and all(t.state.value == "complete" for t in trials)
    assert {t.params["optimizer"] for t in trials} == {"sgd", "adam"}
    for t in trials:  # the objective raises if an inactive parameter reaches it
        assert ("momentum" in t.params) == (t.params["optimizer"] == "sgd")
    capsys.readouterr()
    db = str(tmp_path / "hpo_lightning.db")
    assert main(["export", "cond", "--storage", db, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    for row in rows:
        empty = "param_beta1" if row["param_optimizer"] == "sgd" else "param_momentum"
        assert row[empty] == ""
    # a rerun of the same file finds the same stored (flat) definition and adds nothing
    assert main(["sweep", str(tmp_path / "cond.yaml"), "--quiet"]) == 0


# --- TPE's tree-wide Parzen estimator -------------------------------------------------------------
def test_the_tree_parzen_estimator_is_a_density_on_the_tree() -> None:
    from hpo_lightning.tuners._parzen_tree import TreeParzenEstimator

    space = CONDITIONAL_SPACE
    rng = np.random.default_rng(0)
    centres = np.array([space.encode(space.decode(rng.random(space.dim))) for _ in range(7)])
    doms = [space[n] for n in space.names]
    n_cats = np.array([d.n_values if d.is_categorical else 0 for d in doms])
    min_bw = np.full(space.dim, 0.005)
    est = TreeParzenEstimator(centres, n_cats, min_bw, space.active_mask)
    # E over the uniform tree prior of l(x) / prior(x) is 1 when l is a density on the tree
    # (uniform in the cube, inactive coordinates NaN: the prior that decode maps to the tree)
    u = rng.random((40000, space.dim))
    x_on = space.active_mask(u)
    x = np.where(x_on, u, np.nan)
    log_prior = -(x_on[:, n_cats > 0] * np.log(n_cats[n_cats > 0])).sum(axis=1)
    ratio = np.exp(est.log_pdf(x) - log_prior)
    assert ratio.mean() == pytest.approx(1.0, abs=0.05)
    # samples are points of the tree: NaN exactly where their branch makes a parameter inactive
    s = est.sample(rng, 500)
    assert (np.isnan(s) == ~space.active_mask(np.nan_to_num(s, nan=0.5))).all()
    assert np.isfinite(est.log_pdf(s)).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tpe_learns_each_branch_of_a_tree_function(seed: int) -> None:
    """Jenatton et al. 2017's tree function: whichever leaf TPE settles on, it finds that leaf's
    optimum (0.1, 0.2, 0.3 or 0.4) -- the leaf's parameters learn from that leaf's trials."""
    x = Float(-1.0, 1.0)
    space = SearchSpace(
        {
            "x1": Categorical(
                {
                    0: {"x2": Categorical({0: {"x4": x}, 1: {"x5": x}}), "r8": Float(0.0, 1.0)},
                    1: {"x3": Categorical({0: {"x6": x}, 1: {"x7": x}}), "r9": Float(0.0, 1.0)},
                }
            )
        }
    )

    def f(p: dict[str, Any]) -> float:
        if p["x1"] == 0:
            return (p["x4"] ** 2 + 0.1 if p["x2"] == 0 else p["x5"] ** 2 + 0.2) + p["r8"]
        return (p["x6"] ** 2 + 0.3 if p["x3"] == 0 else p["x7"] ** 2 + 0.4) + p["r9"]

    tuner = make_tuner("tpe", space, seed=seed, max_trials=60)
    while (params := tuner.suggest()) is not None:
        tuner.report_result(params, f(params))
    best = tuner.best
    assert best is not None
    p = best.params
    leaf = 0.1 + (0.2 * p["x1"]) + 0.1 * (p["x2"] if p["x1"] == 0 else p["x3"])
    assert best.value - leaf < 0.03, (best.value, p)
