"""BBOB-like problems for ``bench_budgets.py``: the hard classes named in issue 17.

Shapes after the COCO noiseless suite (Hansen et al. 2009, "Real-Parameter Black-Box
Optimization Benchmarking 2009: Noiseless Functions Definitions"): f10 (rotated ellipsoid,
condition 1e6), f15 (rotated Rastrigin), f21 (Gallagher's 101 peaks), f23 (Katsuura) and
f24 (Lunacek bi-Rastrigin), plus f8 (Rosenbrock, rotated). Simplified: no oscillation /
asymmetry transforms, one fixed instance per dimension (rotation and optimum drawn from a
generator seeded by the dimension, so every method and seed sees the same function). The box
is ``[-5, 5]^d`` as in COCO; the optimum ``x_opt`` lies in ``[-4, 4]^d``; every function is
shifted so that its minimum is 0.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from _functions import Problem

from hpo_lightning import Float, SearchSpace


def _vec(p: Mapping[str, Any], d: int) -> np.ndarray:
    return np.array([p[f"x{i}"] for i in range(d)], dtype=float)


@functools.cache
def _instance(d: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random rotation and optimum for dimension d (salt: one per function)."""
    rng = np.random.default_rng([17, d, salt])
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q *= np.sign(np.diag(r))[None, :]
    return q, rng.uniform(-4, 4, size=d)


def ellipsoid_rot(x: np.ndarray) -> float:
    """f10: sum 1e6^(i/(d-1)) z_i^2 with z = R (x - x_opt)."""
    d = len(x)
    q, xo = _instance(d, 10)
    z = q @ (x - xo)
    w = 1e6 ** (np.arange(d) / max(d - 1, 1))
    return float((w * z * z).sum())


def rastrigin_rot(x: np.ndarray) -> float:
    """f15-like: Rastrigin on z = R diag(10^(i/2(d-1))) R' (x - x_opt)."""
    d = len(x)
    q, xo = _instance(d, 15)
    lam = 10 ** (0.5 * np.arange(d) / max(d - 1, 1))
    z = q @ (lam * (q.T @ (x - xo)))
    return float(10 * (d - np.cos(2 * math.pi * z).sum()) + (z * z).sum())


def bi_rastrigin(x: np.ndarray) -> float:
    """f24-like (Lunacek): two funnels, the better one the smaller, plus a Rastrigin ripple."""
    d = len(x)
    q, _ = _instance(d, 24)
    mu0, s = 2.5, 1.0 - 1.0 / (2 * math.sqrt(d + 20) - 8.2)
    mu1 = -math.sqrt((mu0 * mu0 - 1) / s)
    xs = 2 * np.sign(_instance(d, 240)[1]) * x  # the better funnel's orthant is random
    z = q @ (xs - mu0)
    funnel = min(float(((xs - mu0) ** 2).sum()), d + s * float(((xs - mu1) ** 2).sum()))
    return funnel + 10 * (d - float(np.cos(2 * math.pi * z).sum()))


@functools.cache
def _peaks(d: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gallagher peaks: rotation, centres, heights and per-peak axis scalings."""
    rng = np.random.default_rng([17, d, 21, n])
    q, _ = _instance(d, 21)
    centres = rng.uniform(-4.9, 4.9, size=(n, d))
    centres[0] = rng.uniform(-4, 4, size=d)
    heights = np.concatenate([[10.0], 1.1 + 8 * np.arange(n - 1) / max(n - 2, 1)])
    alpha = np.concatenate([[1000.0], 1000.0 ** (2 * rng.permutation(n - 1) / max(n - 2, 1))])
    scales = np.empty((n, d))
    for i in range(n):
        c = alpha[i] ** (0.5 * np.arange(d) / max(d - 1, 1))
        scales[i] = rng.permutation(c) / alpha[i] ** 0.25
    return q, centres, heights, scales


def gallagher(x: np.ndarray, n: int = 101) -> float:
    """f21: 10 - max_i h_i exp(-|C_i^(1/2) R (x - y_i)|^2 / 2d), squared, as in COCO (no Tosz)."""
    d = len(x)
    q, centres, heights, scales = _peaks(d, n)
    z = (x[None, :] - centres) @ q.T
    g = heights * np.exp(-((scales * z * z).sum(axis=1)) / (2 * d))
    return float((10.0 - g.max()) ** 2)


def katsuura(x: np.ndarray) -> float:
    """f23: a rugged, fractal-like product over coordinates (32 terms each), minimum 0."""
    d = len(x)
    q, xo = _instance(d, 23)
    lam = 100 ** (0.5 * np.arange(d) / max(d - 1, 1))
    z = q @ (lam * (q.T @ (x - xo)))
    p2 = 2.0 ** np.arange(1, 33)
    t = np.abs(p2[None, :] * z[:, None] - np.round(p2[None, :] * z[:, None])) / p2[None, :]
    prod = np.prod((1 + (np.arange(1, d + 1) * t.sum(axis=1))) ** (10 / d**1.2))
    return float(10 / d**2 * (prod - 1))


def rosenbrock_rot(x: np.ndarray) -> float:
    """f9-like: Rosenbrock on a rotated, scaled copy of x, minimum 0."""
    d = len(x)
    q, xo = _instance(d, 9)
    z = max(1.0, math.sqrt(d) / 8) * (q @ (x - xo)) + 1.0
    return float((100 * (z[:-1] ** 2 - z[1:]) ** 2 + (z[:-1] - 1) ** 2).sum())


FUNCTIONS: dict[str, Callable[[np.ndarray], float]] = {
    "ellipsoid_rot": ellipsoid_rot,
    "rastrigin_rot": rastrigin_rot,
    "bi_rastrigin": bi_rastrigin,
    "gallagher": gallagher,
    "katsuura": katsuura,
    "rosenbrock_rot": rosenbrock_rot,
}


def _objective(p: Mapping[str, Any], fn: Callable[[np.ndarray], float], d: int) -> float:
    return fn(_vec(p, d))


def bbob_problem(name: str, d: int) -> Problem:
    """One of :data:`FUNCTIONS` in d dimensions on ``[-5, 5]^d`` (minimum 0)."""
    fn = FUNCTIONS[name]
    space = SearchSpace({f"x{i}": Float(-5.0, 5.0) for i in range(d)})
    return Problem(f"{name}{d}", space, functools.partial(_objective, fn=fn, d=d), 0.0)
