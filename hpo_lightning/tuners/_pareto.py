"""Pareto maths for several objectives, on *losses* (numpy only).

Every function works on losses: each objective turned into "lower is better" (see
:func:`to_losses`), one row per point, one column per objective.

Rules (the ones ``best``, the plots and the multi-objective tuners use):

* **Dominance:** ``a`` dominates ``b`` when ``a`` is no worse in every objective and strictly
  better in at least one (:func:`dominates`). Equal points do not dominate each other, so
  duplicates of a non-dominated point are all on the front.
* **Constrained dominance** (Deb 2000, "An efficient constraint handling method for genetic
  algorithms", Sec. 3), used when a ``violation`` array is given (``>= 0``; 0 is feasible, a
  positive value is by how much the constraints are violated, summed): a feasible point
  dominates every infeasible one; of two infeasible points the one with the smaller violation
  dominates; two feasible points, or two infeasible ones with *equal* violation, compare by
  plain dominance of their losses.
* **Hypervolume:** the measure of the region dominated by the points and bounded by the
  ``reference`` point (every coordinate of the reference worse than the points that count).
  Points that are not strictly better than the reference in every objective add nothing.
  It is computed exactly: a sweep in 2-D, slices along the third objective (one 2-D sweep per
  slab) in 3-D, and the WFG recursion (While et al. 2012, "A Fast Way of Calculating Exact
  Hypervolumes", Eq. 2-4) above, with the 3-D slicing as its base case. Exact and fast up to
  about 4 objectives and a few hundred points.

Example:
    >>> L = to_losses([[0.9, 12.0], [0.8, 5.0], [0.7, 9.0]], ["max", "min"])
    >>> pareto_front(L).tolist()
    [0, 1]
    >>> round(hypervolume(L, reference=[0.0, 20.0]), 6)
    12.8
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hpo_lightning.exceptions import UserInputError


def to_losses(values: Any, modes: Sequence[str]) -> np.ndarray:
    """Values turned into losses: the columns of "max" objectives negated.

    Args:
        values: shape (n, m) or (m,), one column per objective.
        modes: "min" or "max" for each of the m objectives.
    """
    arr = np.array(values, dtype=float)
    signs = np.array([_sign(m) for m in modes])
    if arr.shape[-1:] != signs.shape:
        raise UserInputError(
            f"values have {arr.shape[-1] if arr.ndim else 0} objectives but {len(signs)} modes "
            f"were given ({list(modes)})"
        )
    return arr * signs


def _sign(mode: str) -> float:
    if mode == "min":
        return 1.0
    if mode == "max":
        return -1.0
    raise UserInputError(f"each mode must be 'min' or 'max', but got {mode!r}")


def _as_losses(losses: Any) -> np.ndarray:
    arr = np.asarray(losses, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise UserInputError(f"losses must have shape (n, m), but got shape {arr.shape}")
    if np.isnan(arr).any():
        raise UserInputError("losses contain NaN; record failed points as inf or leave them out")
    return arr


def _as_violation(violation: Any, n: int) -> np.ndarray | None:
    if violation is None:
        return None
    v = np.asarray(violation, dtype=float).reshape(-1)
    if v.shape != (n,):
        raise UserInputError(f"violation must have one value per point ({n}), got {v.shape}")
    if np.isnan(v).any() or (v < 0).any():
        raise UserInputError("violation must be >= 0 for every point (0 means feasible)")
    return v


def _as_reference(reference: Any, m: int) -> np.ndarray:
    ref = np.asarray(reference, dtype=float).reshape(-1)
    if ref.shape != (m,):
        raise UserInputError(f"the reference point needs {m} coordinates, but got {ref.shape[0]}")
    if not np.isfinite(ref).all():
        raise UserInputError("the reference point must be finite")
    return ref


def dominates(a: Any, b: Any) -> bool:
    """Whether loss vector ``a`` Pareto-dominates ``b`` (no worse anywhere, better somewhere)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(x <= y) and np.any(x < y))


def _weakly_dominates(L: np.ndarray) -> np.ndarray:
    """``W[i, j]``: row i is no worse than row j in every objective (one pass per objective:
    much faster than an (n, n, m) broadcast)."""
    W = np.ones((len(L), len(L)), dtype=bool)
    for k in range(L.shape[1]):
        W &= L[:, None, k] <= L[None, :, k]
    return W


def domination_matrix(losses: Any, violation: Any = None) -> np.ndarray:
    """``D[i, j]`` is True when point i dominates point j (constrained when violation given)."""
    L = _as_losses(losses)
    le = _weakly_dominates(L)
    D = le & ~le.T  # no worse everywhere, and the other is not: strictly better somewhere
    v = _as_violation(violation, len(L))
    if v is not None:
        feas = v == 0
        both_feasible = feas[:, None] & feas[None, :]
        same_violation = v[:, None] == v[None, :]
        by_violation = v[:, None] < v[None, :]  # includes feasible over infeasible
        D = np.where(both_feasible | same_violation, D, by_violation)
    return D


def non_dominated_sort(
    losses: Any, violation: Any = None, *, limit: int | None = None
) -> list[np.ndarray]:
    """The fronts, best first: arrays of point indices (ascending), covering every point.

    ``limit``: stop once the fronts found hold at least that many points (the rest are in no
    returned front); NSGA-II and TPE need only the best few.
    """
    D = domination_matrix(losses, violation)
    n = D.shape[0]
    count = D.sum(axis=0)  # how many points dominate each point
    remaining = np.ones(n, dtype=bool)
    fronts: list[np.ndarray] = []
    while remaining.any() and (limit is None or n - int(remaining.sum()) < limit):
        front = np.flatnonzero(remaining & (count == 0))
        fronts.append(front)
        remaining[front] = False
        count = count - D[front].sum(axis=0)
    return fronts


def pareto_front(losses: Any, violation: Any = None) -> np.ndarray:
    """Indices (ascending) of the points no other point dominates (see the module rules)."""
    D = domination_matrix(losses, violation)
    return np.flatnonzero(~D.any(axis=0))


def crowding_distance(losses: Any) -> np.ndarray:
    """NSGA-II crowding distance of each point within its set (Deb et al. 2002, Sec. III-B).

    Per objective, the points are sorted and each gets the normalised gap between its two
    neighbours; the extremes get inf. Objectives with a zero range add nothing.
    """
    L = _as_losses(losses)
    n, m = L.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(L[:, k], kind="stable")
        col = L[order, k]
        span = col[-1] - col[0]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0 and np.isfinite(span):
            dist[order[1:-1]] += (col[2:] - col[:-2]) / span
    return dist


def hypervolume(losses: Any, reference: Any) -> float:
    """The exact hypervolume dominated by ``losses`` inside the box bounded by ``reference``."""
    L = _as_losses(losses)
    ref = _as_reference(reference, L.shape[1])
    L = L[np.all(ref > L, axis=1)]
    if len(L) == 0:
        return 0.0
    return float(_wfg(_nondominated(L), ref))


def hypervolume_contributions(losses: Any, reference: Any) -> np.ndarray:
    """Per point, the hypervolume lost when it is removed (0 for dominated points and for
    points with a duplicate). For a 2-D front by the sweep's rectangles, else as each point's
    box minus the part of it the other points cover (While et al. 2012, Eq. 3)."""
    L = _as_losses(losses)
    ref = _as_reference(reference, L.shape[1])
    out = np.zeros(len(L))
    inside = np.flatnonzero(np.all(ref > L, axis=1))
    own = inside[_distinct_front(L[inside])]
    if L.shape[1] == 2 and len(own) == len(inside):  # a front: the sweep's rectangles
        order = own[np.argsort(L[own, 0], kind="stable")]  # on a front: y falls as x grows
        x, y = L[order, 0], L[order, 1]
        out[order] = (np.append(x[1:], ref[0]) - x) * (np.append(ref[1], y[:-1]) - y)
        return out
    box = L[inside]
    for i, row in zip(inside, box):
        if not np.isin(i, own):
            continue
        # the part of p's box that the others cover: their points pushed up to p (WFG's limit)
        others = np.maximum(box[inside != i], row)
        out[i] = float(np.prod(ref - row)) - _wfg(_nondominated(others), ref)
    return np.maximum(out, 0.0)


def _distinct_front(L: np.ndarray) -> np.ndarray:
    """Indices of the rows of L that no row dominates and no other row equals."""
    le = _weakly_dominates(L)
    eq = le & le.T
    np.fill_diagonal(eq, False)
    return np.flatnonzero(~((le & ~le.T).any(axis=0) | eq.any(axis=0)))


def _nondominated(L: np.ndarray) -> np.ndarray:
    """The distinct non-dominated rows of L (a dominated row or a repeat adds no volume)."""
    if len(L) <= 1:
        return L
    le = _weakly_dominates(L)
    repeat = np.triu(le & le.T, 1).any(axis=0)  # equal to an earlier row
    return L[~((le & ~le.T).any(axis=0) | repeat)]


def _hv2d(L: np.ndarray, ref: np.ndarray) -> float:
    """2-D hypervolume by a sweep along the first objective (rows strictly inside the box)."""
    order = np.argsort(L[:, 0], kind="stable")
    x, y = L[order, 0], np.minimum.accumulate(L[order, 1])
    widths = np.diff(np.append(x, ref[0]))
    return float((widths * (ref[1] - y)).sum())


def _hv3d(L: np.ndarray, ref: np.ndarray) -> float:
    """3-D hypervolume by slicing along the third objective, a 2-D sweep per slab."""
    L = L[np.argsort(L[:, 2], kind="stable")]
    heights = np.diff(np.append(L[:, 2], ref[2]))
    return float(sum(_hv2d(L[: i + 1, :2], ref) * h for i, h in enumerate(heights) if h > 0))


def _wfg(L: np.ndarray, ref: np.ndarray) -> float:
    """WFG: hv(S) = sum_i exclhv(p_i, S_{>i}); exclhv(p, S) = box(p) - hv(limit(S, p))."""
    n, m = L.shape
    if n == 0:
        return 0.0
    if m == 1:
        return float(ref[0] - L[:, 0].min())
    if m == 2:
        return _hv2d(L, ref)
    if m == 3:
        return _hv3d(L, ref)
    if n == 1:
        return float(np.prod(ref - L[0]))
    # sorting by the last objective, worst first, keeps the limit sets small
    L = L[np.argsort(-L[:, -1], kind="stable")]
    total = 0.0
    for i in range(n):
        box = float(np.prod(ref - L[i]))
        rest = L[i + 1 :]
        if len(rest):
            limited = _nondominated(np.maximum(rest, L[i]))
            limited = limited[np.all(limited < ref, axis=1)]
            box -= _wfg(limited, ref)
        total += box
    return total
