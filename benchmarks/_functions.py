"""Test functions for the benchmarks: each a SearchSpace, an objective (minimised) and its optimum.

Branin (2-D), Hartmann-6 and Rosenbrock-4 are the classic global-optimisation problems (Surjanovic &
Bingham, "Virtual Library of Simulation Experiments"); ``mixed`` is ours: a 5-D problem with a
log-scaled float, a stepped int, a log-scaled int and two categoricals, shaped like a small
network's learning rate / width / depth / optimiser / activation sweep.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpo_lightning import Categorical, Float, Int, SearchSpace


@dataclass(frozen=True)
class Problem:
    """A benchmark problem: minimise ``objective(params)`` over ``space``; ``optimum`` is known."""

    name: str
    space: SearchSpace
    objective: Callable[[Mapping[str, Any]], float]
    optimum: float


def branin(p: Mapping[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(p: Mapping[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(6)])
    inner = (_H6_A * (x[None, :] - _H6_P) ** 2).sum(axis=1)
    return float(-(_H6_ALPHA * np.exp(-inner)).sum())


def rosenbrock4(p: Mapping[str, Any]) -> float:
    x = [p[f"x{i}"] for i in range(4)]
    return float(sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3)))


_OPT_PENALTY = {"adam": 0.0, "rmsprop": 0.15, "sgd": 0.4}
_ACT_PENALTY = {"relu": 0.05, "gelu": 0.0, "tanh": 0.2, "sigmoid": 0.5}


def mixed(p: Mapping[str, Any]) -> float:
    """A smooth "validation loss" over lr (log), width (log int), depth (int) and two choices.

    The best learning rate depends on the optimiser (SGD wants ~10x Adam's), the best width on
    the depth, so the parameters interact like they do in real sweeps. Minimum 0.0 at
    lr=1e-3, width=128, depth=3, batch=64, optimizer=adam, activation=gelu.
    """
    lr_opt = 1e-2 if p["optimizer"] == "sgd" else 1e-3
    lr_term = 0.5 * (math.log10(p["lr"]) - math.log10(lr_opt)) ** 2
    width_opt = 128 * 2 ** ((3 - p["depth"]) / 2)
    width_term = 0.3 * (math.log2(p["width"]) - math.log2(width_opt)) ** 2
    depth_term = 0.05 * (p["depth"] - 3) ** 2
    batch_term = 0.05 * (math.log2(p["batch"]) - 6) ** 2
    choice_term = _OPT_PENALTY[p["optimizer"]] + _ACT_PENALTY[p["activation"]]
    return lr_term + width_term + depth_term + batch_term + choice_term


PROBLEMS: dict[str, Problem] = {
    "branin": Problem(
        "branin",
        SearchSpace({"x1": Float(-5, 10), "x2": Float(0, 15)}),
        branin,
        0.397887,
    ),
    "hartmann6": Problem(
        "hartmann6",
        SearchSpace({f"x{i}": Float(0, 1) for i in range(6)}),
        hartmann6,
        -3.32237,
    ),
    "rosenbrock4": Problem(
        "rosenbrock4",
        SearchSpace({f"x{i}": Float(-2.048, 2.048) for i in range(4)}),
        rosenbrock4,
        0.0,
    ),
    "mixed": Problem(
        "mixed",
        SearchSpace(
            {
                "lr": Float(1e-5, 1.0, log=True),
                "width": Int(8, 1024, log=True),
                "depth": Int(1, 8),
                "batch": Int(16, 256, step=16),
                "optimizer": Categorical(["adam", "rmsprop", "sgd"]),
                "activation": Categorical(["relu", "gelu", "tanh", "sigmoid"]),
            }
        ),
        mixed,
        0.0,
    ),
}


def optuna_distributions(space: SearchSpace) -> dict[str, Any]:
    """The Optuna distributions of our domains (same bounds, log scales and steps)."""
    import optuna.distributions as od

    out: dict[str, Any] = {}
    for name, d in space.items():
        if isinstance(d, Float):
            out[name] = od.FloatDistribution(d.low, d.high, log=d.log)
        elif isinstance(d, Int):
            out[name] = od.IntDistribution(d.low, d.high, log=d.log, step=d.step)
        elif isinstance(d, Categorical):
            out[name] = od.CategoricalDistribution(list(d.choices))
        else:  # pragma: no cover - every domain kind is handled above
            raise TypeError(f"no Optuna distribution for {d!r}")
    return out
