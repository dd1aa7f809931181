"""The GP's local phase: a model of the neighbourhood of the incumbent, searched in its box.

After enough trials a global GP costs cubic time in the history and, on functions with weak
global structure or ill-conditioned valleys, spends its suggestions on a smooth global picture
that the data no longer support. Past ``local_from(dim)`` usable trials, :class:`GPTuner`
searches the acquisition only in a box around the incumbent (the best point so far) -- a trust
region in the sense of TuRBO (Eriksson et al. 2019, "Scalable Global Optimization via Local
Bayesian Optimization"), whose side follows TuRBO's success / failure counter
(:func:`trust_length`) and whose centre moves with the incumbent -- and fits its model on the
``local_size(dim)`` observations nearest to the incumbent. Cost per suggestion no longer grows
with the number of trials (only the nearest-neighbour search, linear in it).

Categorical coordinates have no box side: they count as distance 1 when they differ, as in
the kernel, and a local suggestion may change at most :func:`hamming_radius` of them from the
incumbent's (all of them while the region is at least its initial size, fewer in proportion
as it shrinks); the local model also holds the observations inside the box with other categories
(:func:`local_subset`).
"""

from __future__ import annotations

import numpy as np


def local_size(dim: int) -> int:
    """Observations in the local model: 50, or 5 per parameter in more than 10 dimensions."""
    return max(50, 5 * dim)


def local_from(dim: int, continuous: bool = True) -> int:
    """Usable observations from which the local phase starts: 20 on a continuous space (every
    parameter a float, no conditions), else twice the local model's size (100 up to 10).

    TuRBO searches its trust region from the first model-based suggestion; the GP here first
    makes about 10 global ones. On bench_budgets.py's BBOB-like problems (development seeds
    900-909, 2-20 dimensions, with the centre as first point) the start at 20 instead of 100
    moved the GP's mean rank against Optuna's CMA-ES and TPE from 1.68 to 1.65 at 30 trials
    and from 1.61 to 1.52 at 60; a start at 30 was between the two, one at ``max(20, 10 + 2
    dim)`` about the same on six 10-20-D problems (seeds 905-912). On the integer grids of
    bench_multifidelity.py (288 configurations, 30 full trainings, seeds 900-909) the same
    early start lost against the start at 100 (better / worse on 1 / 17 instances without
    stopping, 3 / 21 with the median rule): a box over 3-4 levels per axis cuts out whole
    levels. So discrete, categorical and conditional spaces keep the later start.
    """
    return 20 if continuous else 2 * local_size(dim)


def local_subset(
    X: np.ndarray,
    loss: np.ndarray,
    cat: np.ndarray,
    k: int,
    box: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Indices of the k rows of X nearest to the row with the lowest loss (itself included),
    in unit-cube Euclidean distance (categoricals: 0 or 1), ties broken by index.

    With ``box`` (the search region ``(lo, hi)``), also up to k rows whose ordered coordinates
    lie in it, whatever their categories, the nearest first: candidates are drawn there with
    any category, so a point suggested with another category than the incumbent's must be in
    the model once it is observed. Without them such a point (distance >= 1 from the incumbent)
    never entered the nearest k, the model kept its prior there, and the same point was
    suggested again and again (seen on the digits MLP: an ``sgd`` twin of an ``adam`` incumbent,
    pruned 8 times in a row).
    """
    centre = X[int(np.argmin(loss))]
    diff = X - centre
    diff[:, cat] = np.abs(diff[:, cat]) > 1e-9
    dist = (diff * diff).sum(axis=1)
    near = np.argsort(dist, kind="stable")[:k]
    if box is None or not cat.any():
        return np.sort(near)
    lo, hi = box[0][~cat] - 1e-6, box[1][~cat] + 1e-6  # a suggestion on the edge is inside
    inside = np.all((X[:, ~cat] >= lo) & (X[:, ~cat] <= hi), axis=1)
    inside[near] = False
    extra = np.flatnonzero(inside)
    extra = extra[np.argsort(dist[extra], kind="stable")[:k]]
    return np.sort(np.concatenate([near, extra]))


_L_INIT, _L_MIN, _L_MAX = 0.8, 0.5**7, 1.6  # TuRBO's side lengths (unit cube)
_SUCCESS_TOL = 3


def trust_length(loss: np.ndarray, start: int, dim: int) -> float:
    """The side length of the trust region after replaying the losses from index ``start``.

    TuRBO's rule (Eriksson et al. 2019, Sec. 2): 3 improvements in a row double the length (up
    to 1.6), ``max(4, dim)`` non-improvements in a row halve it; below 2^-7 it starts again at
    0.8 (TuRBO restarts there; the history is kept here). A deterministic function of the
    history, so a rebuilt tuner has the same region.
    """
    length, succ, fail = _L_INIT, 0, 0
    best = float(np.min(loss[:start]))
    for v in loss[start:]:
        if v < best - 1e-3 * abs(best):
            succ, fail = succ + 1, 0
        else:
            succ, fail = 0, fail + 1
        best = min(best, float(v))
        if succ == _SUCCESS_TOL:
            length, succ = min(2.0 * length, _L_MAX), 0
        elif fail == max(4, dim):
            length, fail = length / 2.0, 0
        if length < _L_MIN:
            length = _L_INIT

    return length


def local_box(
    centre: np.ndarray, length: float, inv_ls2: np.ndarray, cat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """TuRBO's box: side ``length * l_j / geomean(l)`` per ordered coordinate, centred on the
    incumbent and clipped to the cube; categoricals keep the whole unit interval."""
    ls = 1.0 / np.sqrt(inv_ls2)
    free = ~cat
    w = ls / np.exp(np.log(ls[free]).mean()) if free.any() else ls
    half = 0.5 * length * w
    lo, hi = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    lo[cat], hi[cat] = 0.0, 1.0
    return lo, hi


def hamming_radius(length: float, n_cat: int) -> int:
    """How many categoricals a local suggestion may change from the incumbent's: all of them
    while the trust region is at least its initial size, fewer as it shrinks (a Hamming-ball
    trust region that follows the ordered one, as in CASMOPOLITAN, Wan et al. 2021).

    Without it, once the box had shrunk to a few hundredths, expected improvement near the
    incumbent vanished and went to the other categories of that same tiny box, which the model
    knew least: on the digits MLP the GP spent trial after trial on the ``sgd`` twin of its
    ``adam`` incumbent, each pruned at the same value.
    """
    return min(n_cat, int(n_cat * length / _L_INIT + 1e-9))


def within_hamming(
    U: np.ndarray, centre: np.ndarray, cat: np.ndarray, radius: int, rng: np.random.Generator
) -> np.ndarray:
    """Rows of U with at most ``radius`` categoricals that differ from ``centre``'s: the
    extra ones, chosen at random, are set back to the centre's values."""
    idx = np.flatnonzero(cat)
    if len(idx) <= radius:
        return U
    differ = np.abs(U[:, idx] - centre[idx]) > 1e-9
    keys = np.where(differ, rng.random(differ.shape), np.inf)
    keep = np.argsort(np.argsort(keys, axis=1), axis=1) < radius  # the radius lowest keys
    reset = differ & ~keep
    out = U.copy()
    sub = out[:, idx]
    sub[reset] = np.broadcast_to(centre[idx], sub.shape)[reset]
    out[:, idx] = sub
    return out
