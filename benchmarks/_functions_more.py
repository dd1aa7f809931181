"""More benchmark problems for ``bench_tuners.py`` (``_functions.py`` holds the first four).

Hartmann-3, Ackley, Levy, Styblinski-Tang and Rosenbrock in several dimensions are the standard
global-optimisation test functions (Surjanovic & Bingham, "Virtual Library of Simulation
Experiments"; bounds and optima as given there, except Ackley on the off-centre box
[-15, 30]^d, so that a search starting in the middle of the cube does not start at the optimum).
``mixed_int`` is ours: an int, a log-int, a float and a categorical that shifts the optimum of
the float. ``svc_wine`` is a real
model: an RBF support-vector classifier on scikit-learn's bundled wine data, minimising the
3-fold cross-validated error over ``C`` and ``gamma`` (log scales) and the scaler (categorical);
evaluations are cached by params, so repeated points cost nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from _functions import Problem

from hpo_lightning import Categorical, Float, Int, SearchSpace

_H3_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array(
    [[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]]
)


def _vec(p: Mapping[str, Any], d: int) -> np.ndarray:
    return np.array([p[f"x{i}"] for i in range(d)], dtype=float)


def hartmann3(p: Mapping[str, Any]) -> float:
    x = _vec(p, 3)
    return float(-(_H3_ALPHA * np.exp(-(_H3_A * (x - _H3_P) ** 2).sum(axis=1))).sum())


def ackley(p: Mapping[str, Any], d: int) -> float:
    x = _vec(p, d)
    a = -20 * math.exp(-0.2 * math.sqrt(float((x**2).mean())))
    return a - math.exp(float(np.cos(2 * math.pi * x).mean())) + 20 + math.e


def levy(p: Mapping[str, Any], d: int) -> float:
    w = 1 + (_vec(p, d) - 1) / 4
    head = math.sin(math.pi * w[0]) ** 2
    mid = float(((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2)).sum())
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return head + mid + tail


def styblinski_tang(p: Mapping[str, Any], d: int) -> float:
    x = _vec(p, d)
    return float(0.5 * (x**4 - 16 * x**2 + 5 * x).sum())


def rosenbrock(p: Mapping[str, Any], d: int) -> float:
    x = _vec(p, d)
    return float((100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum())


_KERNEL_SHIFT = {"linear": 0.0, "quadratic": 0.3, "cubic": 0.6}


def mixed_int(p: Mapping[str, Any]) -> float:
    """Minimum 0 at layers=4, units=64, dropout=0.2 + shift, kind=linear (shift 0)."""
    shift = _KERNEL_SHIFT[p["kind"]]
    return (
        0.1 * (p["layers"] - 4) ** 2
        + 0.5 * (math.log2(p["units"]) - 6) ** 2
        + 4 * (p["dropout"] - 0.2 - 0.5 * shift) ** 2
        + shift
    )


@functools.lru_cache(maxsize=1)
def _wine() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_wine

    data = load_wine()
    return data.data, data.target


@functools.lru_cache(maxsize=100_000)
def _svc_error(c: float, gamma: float, scaler: str) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler
    from sklearn.svm import SVC

    X, y = _wine()
    scale = StandardScaler() if scaler == "standard" else MinMaxScaler()
    model = make_pipeline(scale, SVC(C=c, gamma=gamma))
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    return 1.0 - float(cross_val_score(model, X, y, cv=cv).mean())


def svc_wine(p: Mapping[str, Any]) -> float:
    return _svc_error(float(p["C"]), float(p["gamma"]), str(p["scaler"]))


def _cube(d: int, low: float, high: float) -> SearchSpace:
    return SearchSpace({f"x{i}": Float(low, high) for i in range(d)})


def more_problems() -> dict[str, Problem]:
    """The problems of this module by name (dimension in the name)."""
    out = {"hartmann3": Problem("hartmann3", _cube(3, 0, 1), hartmann3, -3.86278)}
    for d in (2, 5):
        out[f"ackley{d}"] = Problem(
            f"ackley{d}", _cube(d, -15.0, 30.0), functools.partial(ackley, d=d), 0.0
        )
        out[f"levy{d}"] = Problem(f"levy{d}", _cube(d, -10, 10), functools.partial(levy, d=d), 0.0)
        out[f"styblinski{d}"] = Problem(
            f"styblinski{d}",
            _cube(d, -5, 5),
            functools.partial(styblinski_tang, d=d),
            -39.16617 * d,
        )
    out["rosenbrock2"] = Problem(
        "rosenbrock2", _cube(2, -2.048, 2.048), functools.partial(rosenbrock, d=2), 0.0
    )
    out["mixed_int"] = Problem(
        "mixed_int",
        SearchSpace(
            {
                "layers": Int(1, 10),
                "units": Int(4, 1024, log=True),
                "dropout": Float(0.0, 0.9),
                "kind": Categorical(["linear", "quadratic", "cubic"]),
            }
        ),
        mixed_int,
        0.0,
    )
    out["svc_wine"] = Problem(
        "svc_wine",
        SearchSpace(
            {
                "C": Float(1e-3, 1e3, log=True),
                "gamma": Float(1e-5, 1e1, log=True),
                "scaler": Categorical(["standard", "minmax"]),
            }
        ),
        svc_wine,
        0.0,
    )
    return out
