"""Search space: validation messages, the plain YAML/JSON shape, encode/decode round trips."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hpo_lightning import Categorical, Float, Int, SearchSpace
from hpo_lightning.exceptions import InvalidSpaceError


# --- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Float(1, 1), r"`low < high` must hold, but got low=1, high=1"),
        (lambda: Float(3, 1), r"`low < high` must hold, but got low=3, high=1"),
        (lambda: Float(0, 1, log=True), r"log=True needs `low > 0`, but got low=0"),
        (lambda: Float(0, math.inf), r"Float bounds must be finite"),
        (lambda: Float("a", 1), r"Float bounds must be numbers"),
        (lambda: Int(5, 1), r"`low < high` must hold, but got low=5, high=1"),
        (lambda: Int(0, 10, log=True), r"log=True needs `low > 0`, but got low=0"),
        (lambda: Int(0, 10, step=0), r"`step` must be >= 1, but got step=0"),
        (lambda: Int(0, 10, step=3), r"`high - low` must be a multiple of step"),
        (lambda: Int(1, 16, log=True, step=3), r"log=True cannot be combined with step=3"),
        (lambda: Int(0.5, 3), r"Int `low` must be an integer, but got low=0.5"),
        (lambda: Categorical([]), r"`choices` must not be empty"),
        (lambda: Categorical(["a", "a"]), r"choices must be unique, but 'a' repeats"),
        (lambda: Categorical("abc"), r"`choices` must be a list of values"),
        (lambda: Categorical([[1]]), r"must be str, int, float, bool or None"),
        (lambda: SearchSpace({}), r"the search space is empty"),
        (lambda: SearchSpace({"": Float(0, 1)}), r"non-empty string"),
        (lambda: SearchSpace([("x", Float(0, 1))]), r"must be a mapping"),
    ],
)
def test_invalid_domains_raise_a_clear_error(build: Any, match: str) -> None:
    with pytest.raises(InvalidSpaceError, match=match):
        build()


def test_categorical_keeps_bool_and_int_apart() -> None:
    cat = Categorical([1, True, 0, False, None])
    assert [cat.index(v) for v in (1, True, 0, False, None)] == [0, 1, 2, 3, 4]


def test_validate_names_missing_and_unexpected_params() -> None:
    space = SearchSpace({"a": Float(0, 1), "b": Int(0, 4, step=2)})
    with pytest.raises(InvalidSpaceError, match=r"missing \['b'\], unexpected \['c'\]"):
        space.validate({"a": 0.5, "c": 1})
    with pytest.raises(InvalidSpaceError, match=r"parameter 'b' = 3 is outside its domain"):
        space.validate({"a": 0.5, "b": 3})
    assert space.contains({"a": 0.5, "b": 4}) and not space.contains({"a": 2.0, "b": 4})


# --- the plain YAML / JSON shape ----------------------------------------------------------------
YAML_SPACE = """
lr: {type: float, low: 1e-4, high: 1e-1, log: true}
hidden: {type: int, low: 16, high: 256, log: true}
batch: {type: int, low: 32, high: 256, step: 32}
dropout: {type: float, low: 0, high: 0.5}
optimizer: {type: categorical, choices: [adam, sgd]}
activation: [relu, gelu]
"""


def test_from_dict_reads_the_yaml_shape_including_1e_4_strings() -> None:
    raw = yaml.safe_load(YAML_SPACE)
    assert raw["lr"]["low"] == "1e-4"  # PyYAML (YAML 1.1) reads it as a string
    space = SearchSpace.from_dict(raw)
    assert space == SearchSpace(
        {
            "lr": Float(1e-4, 1e-1, log=True),
            "hidden": Int(16, 256, log=True),
            "batch": Int(32, 256, step=32),
            "dropout": Float(0.0, 0.5),
            "optimizer": Categorical(["adam", "sgd"]),
            "activation": Categorical(["relu", "gelu"]),
        }
    )
    assert space.names == ("lr", "hidden", "batch", "dropout", "optimizer", "activation")
    assert SearchSpace.from_dict(space.to_dict()) == space
    assert yaml.safe_load(yaml.safe_dump(space.to_dict())) == space.to_dict()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"x": {"type": "flaot", "low": 0, "high": 1}}, r"'x': `type` must be one of.*'float'"),
        ({"x": {"type": "float", "low": 0, "hgih": 1}}, r"unknown key 'hgih'.*'high'"),
        ({"x": {"type": "float", "low": 0}}, r"'x': a float domain needs `high`"),
        ({"x": {"type": "float", "low": "zero", "high": 1}}, r"`low` must be a number"),
        ({"x": {"type": "int", "low": 0, "high": 5, "log": "yes"}}, r"`log` must be true or false"),
        ({"x": {"type": "categorical"}}, r"a categorical needs `choices`"),
        ({"x": 3}, r"'x' must be a mapping"),
        ({"x": {"type": "float", "low": 2, "high": 1}}, r"parameter 'x': `low < high`"),
    ],
)
def test_from_dict_errors_name_the_parameter(spec: Any, match: str) -> None:
    with pytest.raises(InvalidSpaceError, match=match):
        SearchSpace.from_dict(spec)


def test_grid_and_decode_errors() -> None:
    space = SearchSpace({"n": Int(1, 3), "c": Categorical(["a", "b"])})
    assert space.is_discrete and space.grid_size() == 6 and len(list(space.grid())) == 6
    with pytest.raises(InvalidSpaceError, match=r"decode needs a vector of length 2"):
        space.decode([0.5])
    with pytest.raises(InvalidSpaceError, match=r"\['x'\] are continuous Floats"):
        list(SearchSpace({"x": Float(0, 1)}).grid())


# --- round trips (hypothesis) -------------------------------------------------------------------
@st.composite
def floats_and_values(draw: st.DrawFn) -> tuple[Float, float]:
    log = draw(st.booleans())
    low = draw(st.floats(1e-6 if log else -1e6, 1e5))
    high = low * draw(st.floats(1.001, 1e6)) if log else low + draw(st.floats(1e-3, 1e6))
    dom = Float(low, high, log=log)
    return dom, draw(st.floats(low, high))


@given(floats_and_values())
def test_float_round_trip(case: tuple[Float, float]) -> None:
    dom, value = case
    u = dom.to_unit(value)
    assert 0.0 <= u <= 1.0
    back = dom.from_unit(u)
    assert dom.contains(back)
    assert back == pytest.approx(value, rel=1e-9, abs=1e-9 * (dom.high - dom.low))


@pytest.mark.parametrize(
    "dom", [Float(1e-6, 1e-2, log=True), Float(0.1, 0.7), Float(3e-5, 0.3, log=True)]
)
def test_the_cube_corners_decode_to_the_exact_bounds(dom: Float) -> None:
    # exp(log(1e-6)) is 1.0000000000000004e-06: a user would see that in the best params
    assert (dom.from_unit(0.0), dom.from_unit(1.0)) == (dom.low, dom.high)
    assert (dom.from_unit(-0.5), dom.from_unit(1.5)) == (dom.low, dom.high)


@st.composite
def ints_and_values(draw: st.DrawFn) -> tuple[Int, int]:
    log = draw(st.booleans())
    step = 1 if log else draw(st.integers(1, 7))
    low = draw(st.integers(1 if log else -1000, 1000))
    high = low + step * draw(st.integers(1, 500))
    dom = Int(low, high, log=log, step=step)
    return dom, low + step * draw(st.integers(0, dom.n_values - 1))


@given(ints_and_values())
def test_int_round_trip(case: tuple[Int, int]) -> None:
    dom, value = case
    assert dom.from_unit(dom.to_unit(value)) == value


@given(ints_and_values(), st.floats(0.0, 1.0))
def test_int_from_unit_is_in_domain_and_stable(case: tuple[Int, int], u: float) -> None:
    dom, _ = case
    v = dom.from_unit(u)
    assert dom.contains(v) and type(v) is int
    assert dom.from_unit(dom.to_unit(v)) == v


def test_linear_int_bins_are_equally_likely() -> None:
    dom = Int(0, 12, step=4)
    u = (np.arange(4000) + 0.5) / 4000
    counts = np.unique([dom.from_unit(x) for x in u], return_counts=True)
    assert list(counts[0]) == [0, 4, 8, 12] and set(counts[1]) == {1000}


scalars = st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none(), st.floats(-9, 9))


@given(st.lists(scalars, min_size=1, max_size=8, unique_by=lambda v: (type(v), v)))
def test_categorical_round_trip(choices: list[Any]) -> None:
    dom = Categorical(choices)
    for i, c in enumerate(choices):
        u = dom.to_unit(c)
        back = dom.from_unit(u)
        assert type(back) is type(c) and back == c and dom.index(back) == i


@given(st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4))
def test_space_decode_then_encode_is_stable(u: list[float]) -> None:
    space = SearchSpace(
        {
            "lr": Float(1e-5, 1.0, log=True),
            "n": Int(16, 512, log=True),
            "b": Int(8, 64, step=8),
            "opt": Categorical(["adam", "sgd", "rmsprop"]),
        }
    )
    params = space.decode(u)
    assert space.contains(params)
    again = space.decode(space.encode(params))
    assert again["n"] == params["n"] and again["b"] == params["b"]
    assert again["opt"] == params["opt"]
    assert again["lr"] == pytest.approx(params["lr"], rel=1e-9)


def test_yaml_exponent_strings_among_numeric_choices_become_numbers() -> None:
    import yaml

    spec = yaml.safe_load("lr: [0.05, 1e-05]\nmixed: [a, 1e-3]\nall_str: ['1e-3', '2e-3']")
    space = SearchSpace.from_dict(spec)
    assert space["lr"].choices == (0.05, 1e-05)  # type: ignore[attr-defined]
    assert space["mixed"].choices == ("a", "1e-3")  # type: ignore[attr-defined]
    assert space["all_str"].choices == ("1e-3", "2e-3")  # type: ignore[attr-defined]
