"""Pareto maths (``hpo_lightning.tuners._pareto``) against brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpo_lightning.exceptions import UserInputError
from hpo_lightning.tuners._pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_contributions,
    non_dominated_sort,
    pareto_front,
    to_losses,
)

FAST = settings(max_examples=60, deadline=None)


def points(m: int, max_n: int = 12, values: int = 6) -> st.SearchStrategy[np.ndarray]:
    """Small integer grids make ties and duplicates common."""
    row = st.lists(st.integers(0, values - 1), min_size=m, max_size=m)
    return st.lists(row, min_size=1, max_size=max_n).map(lambda r: np.array(r, dtype=float))


def brute_dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def brute_constrained(a: np.ndarray, va: float, b: np.ndarray, vb: float) -> bool:
    if va == 0 and vb > 0:
        return True
    if va > 0 and vb == 0:
        return False
    if va > 0 and vb > 0 and va != vb:
        return va < vb
    return brute_dominates(a, b)


def brute_front(L: np.ndarray, v: np.ndarray | None = None) -> list[int]:
    v = np.zeros(len(L)) if v is None else v
    return [
        i
        for i in range(len(L))
        if not any(brute_constrained(L[j], v[j], L[i], v[i]) for j in range(len(L)))
    ]


def brute_hv_grid(L: np.ndarray, ref: np.ndarray) -> float:
    """Count the unit cells of the integer grid below ref that some point dominates."""
    total = 0
    for cell in itertools.product(*[range(int(r)) for r in ref]):
        corner = np.array(cell, dtype=float)  # the cell [corner, corner + 1]
        if any(np.all(p <= corner) for p in L):
            total += 1
    return float(total)


def brute_hv_inclusion_exclusion(L: np.ndarray, ref: np.ndarray) -> float:
    L = L[np.all(ref > L, axis=1)]
    total = 0.0
    for k in range(1, len(L) + 1):
        for subset in itertools.combinations(range(len(L)), k):
            corner = L[list(subset)].max(axis=0)
            total += (-1) ** (k + 1) * float(np.prod(ref - corner))
    return total


# --- dominance and fronts --------------------------------------------------------------------
def test_to_losses_negates_max_columns() -> None:
    L = to_losses([[1.0, 2.0], [3.0, -4.0]], ["max", "min"])
    assert L.tolist() == [[-1.0, 2.0], [-3.0, -4.0]]
    with pytest.raises(UserInputError, match="2 modes"):
        to_losses([[1.0, 2.0, 3.0]], ["min", "max"])
    with pytest.raises(UserInputError, match="'min' or 'max'"):
        to_losses([[1.0]], ["up"])


def test_dominates_needs_strictly_better_somewhere() -> None:
    assert dominates([1, 2], [1, 3]) and not dominates([1, 3], [1, 2])
    assert not dominates([1, 2], [1, 2]) and not dominates([0, 3], [1, 2])


@FAST
@given(points(2) | points(3))
def test_front_is_exactly_the_non_dominated_points(L: np.ndarray) -> None:
    front = pareto_front(L).tolist()
    assert front == brute_front(L)
    dominated = set(range(len(L))) - set(front)
    for i in dominated:  # a dominated point is never in the front, and some front point beats it
        assert any(brute_dominates(L[j], L[i]) for j in front)


@FAST
@given(points(2, values=4), st.data())
def test_constrained_front_matches_the_rule(L: np.ndarray, data: st.DataObject) -> None:
    v = np.array(
        data.draw(
            st.lists(st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0]), min_size=len(L), max_size=len(L))
        )
    )
    front = pareto_front(L, v).tolist()
    assert front == brute_front(L, v)
    if (v == 0).any():  # a feasible point exists: the front is feasible only
        assert all(v[i] == 0 for i in front)
    else:  # else only the least-violating points can be on it
        assert all(v[i] == v.min() for i in front)


@FAST
@given(points(3))
def test_non_dominated_sort_peels_fronts(L: np.ndarray) -> None:
    fronts = non_dominated_sort(L)
    assert sorted(np.concatenate(fronts).tolist()) == list(range(len(L)))
    remaining = list(range(len(L)))
    for front in fronts:
        sub = L[remaining]
        expect = [remaining[i] for i in brute_front(sub)]
        assert front.tolist() == expect
        remaining = [i for i in remaining if i not in set(expect)]


@FAST
@given(points(2) | points(3), st.randoms(use_true_random=False))
def test_front_is_invariant_to_order_and_duplicates(L: np.ndarray, rnd) -> None:
    perm = list(range(len(L)))
    rnd.shuffle(perm)
    front = {tuple(r) for r in L[pareto_front(L)]}
    shuffled = L[perm]
    assert {tuple(r) for r in shuffled[pareto_front(shuffled)]} == front
    doubled = np.concatenate([L, L])
    assert {tuple(r) for r in doubled[pareto_front(doubled)]} == front
    ref = L.max(axis=0) + 1
    assert hypervolume(shuffled, ref) == pytest.approx(hypervolume(L, ref))
    assert hypervolume(doubled, ref) == pytest.approx(hypervolume(L, ref))


def test_crowding_distance_gives_extremes_inf_and_middle_the_gaps() -> None:
    d = crowding_distance([[0.0, 4.0], [1.0, 2.0], [4.0, 0.0]])
    assert np.isinf(d[0]) and np.isinf(d[2])
    assert d[1] == pytest.approx((4 - 0) / 4 + (4 - 0) / 4)


# --- hypervolume -----------------------------------------------------------------------------
@FAST
@given(points(2, max_n=10))
def test_hypervolume_2d_matches_the_grid_count(L: np.ndarray) -> None:
    ref = np.array([6.0, 6.0])
    assert hypervolume(L, ref) == pytest.approx(brute_hv_grid(L, ref))


@FAST
@given(points(3, max_n=8, values=5))
def test_hypervolume_3d_matches_the_grid_count(L: np.ndarray) -> None:
    ref = np.array([5.0, 5.0, 5.0])
    assert hypervolume(L, ref) == pytest.approx(brute_hv_grid(L, ref))


@FAST
@given(st.integers(2, 4), st.integers(1, 7), st.integers(0, 10_000))
def test_hypervolume_matches_inclusion_exclusion_on_real_points(m: int, n: int, seed: int) -> None:
    L = np.random.default_rng(seed).random((n, m))
    ref = np.full(m, 1.1)
    assert hypervolume(L, ref) == pytest.approx(brute_hv_inclusion_exclusion(L, ref), rel=1e-9)


def test_hypervolume_of_points_outside_the_box_is_zero() -> None:
    assert hypervolume([[2.0, 0.0], [1.0, 1.0]], [1.0, 1.0]) == 0.0
    assert hypervolume([[0.5, 0.5]], [1.0, 1.0]) == pytest.approx(0.25)
    with pytest.raises(UserInputError, match="2 coordinates"):
        hypervolume([[0.5, 0.5]], [1.0])


def test_hypervolume_contributions_are_exclusive_volumes() -> None:
    c = hypervolume_contributions([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0], [2.0, 2.0]], [3.0, 3.0])
    assert c.tolist() == pytest.approx([1.0, 1.0, 1.0, 0.0])


def test_hypervolume_is_fast_enough_for_a_few_hundred_points_in_4d() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 4))
    L = -np.abs(x) / np.linalg.norm(x, axis=1, keepdims=True)  # all on a concave front
    hv = hypervolume(L, np.zeros(4))
    assert 0 < hv < 1


@FAST
@given(st.sampled_from([2, 3]), st.integers(1, 9), st.integers(0, 10_000))
def test_contributions_match_removing_each_point(m: int, n: int, seed: int) -> None:
    L = np.round(np.random.default_rng(seed).random((n, m)) * 4) / 4  # ties and repeats
    ref = np.full(m, 1.1)
    total = hypervolume(L, ref)
    brute = [total - hypervolume(np.delete(L, i, axis=0), ref) for i in range(n)]
    assert hypervolume_contributions(L, ref) == pytest.approx(brute, abs=1e-12)


@FAST
@given(points(2), st.integers(1, 12))
def test_a_limited_sort_returns_the_first_fronts(L: np.ndarray, limit: int) -> None:
    full = non_dominated_sort(L)
    part = non_dominated_sort(L, limit=limit)
    assert [f.tolist() for f in part] == [f.tolist() for f in full[: len(part)]]
    assert sum(map(len, part)) >= min(limit, len(L)) > sum(map(len, part[:-1]))
