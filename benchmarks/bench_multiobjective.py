"""Benchmark (issue 15): multi-objective tuners vs Optuna's NSGA-II, TPE, random (and GP).

Every method sees the same problems and seeds; one run of ``--budget`` sequential
suggest/report steps per (problem, seed, method). The result of a run is the hypervolume of
its losses (exact, ``hpo_lightning.tuners.hypervolume``) against the problem's fixed reference
point. Printed:

* the median hypervolume per problem and method (higher is better),
* the mean rank per method over all (problem, seed) cells (1 = best; ties share),
* the median milliseconds per suggestion (over each run's last 10 suggestions),
* whether the goal holds: one of our methods has the best mean rank (``auto`` ideally).

Problems: ZDT1, ZDT2, ZDT3 (Zitzler et al. 2000) and DTLZ2 (Deb et al. 2005) with 2 and 3
objectives, all in 6 dimensions, and ``mlp_digits``: a scikit-learn MLP on the bundled digits
data set, validation error against log10 of its number of weights (nothing is downloaded).

Run ``python benchmarks/bench_multiobjective.py`` (10 seeds, about 30 minutes on a loaded
2-core machine) or ``--seeds 3 --budget 40`` for a quick look; ``--optuna-gp`` adds Optuna's
GPSampler (LogEHVI; about 2 s per suggestion here, so off by default); ``--out FILE`` keeps
every run as JSON lines. BLAS is limited to one thread.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import functools
import json
import math
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _functions import optuna_distributions

from hpo_lightning import Float, Int, SearchSpace, make_tuner
from hpo_lightning.tuners import hypervolume

OURS = ["auto", "gp", "tpe", "nsga2", "random"]
OPTUNA = ["optuna_nsga2", "optuna_tpe", "optuna_random"]


@dataclass(frozen=True)
class MOProblem:
    name: str
    space: SearchSpace
    objective: Callable[[Mapping[str, Any]], tuple[float, ...]]  # losses (all minimised)
    reference: tuple[float, ...]


def _x(params: Mapping[str, Any], d: int) -> np.ndarray:
    return np.array([params[f"x{i}"] for i in range(d)])


def zdt(kind: int, params: Mapping[str, Any], d: int) -> tuple[float, float]:
    """ZDT1-3 (Zitzler, Deb & Thiele 2000, Eq. for T1-T3) in d dimensions."""
    x = _x(params, d)
    f1 = float(x[0])
    g = 1.0 + 9.0 * float(x[1:].mean())
    r = f1 / g
    if kind == 1:
        h = 1.0 - math.sqrt(r)
    elif kind == 2:
        h = 1.0 - r * r
    else:
        h = 1.0 - math.sqrt(r) - r * math.sin(10 * math.pi * f1)
    return f1, g * h


def dtlz2(params: Mapping[str, Any], d: int, m: int) -> tuple[float, ...]:
    """DTLZ2 (Deb, Thiele, Laumanns & Zitzler 2005, Sec. 6.2) with m objectives."""
    x = _x(params, d)
    g = float(((x[m - 1 :] - 0.5) ** 2).sum())
    out = []
    for i in range(m):
        f = 1.0 + g
        for xj in x[: m - 1 - i]:
            f *= math.cos(xj * math.pi / 2)
        if i > 0:
            f *= math.sin(x[m - 1 - i] * math.pi / 2)
        out.append(f)
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order] / 16.0, y[order]
    return X[:700], y[:700], X[700:1200], y[700:1200]


@functools.lru_cache(maxsize=4096)
def _mlp(layers: int, width: int, lr: float, alpha: float) -> tuple[float, float]:
    from sklearn.neural_network import MLPClassifier

    Xtr, ytr, Xva, yva = _digits()
    hidden = (width,) * layers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the budget of epochs is the point
        model = MLPClassifier(
            hidden, learning_rate_init=lr, alpha=alpha, max_iter=30, random_state=0
        ).fit(Xtr, ytr)
    size = sum(w.size for w in model.coefs_) + sum(b.size for b in model.intercepts_)
    return 1.0 - float(model.score(Xva, yva)), math.log10(size)


def mlp_digits(params: Mapping[str, Any]) -> tuple[float, float]:
    """Validation error and log10(weights) of an MLP on 700 digits (500 for validation)."""
    return _mlp(params["layers"], params["width"], params["lr"], params["alpha"])


def problems() -> dict[str, MOProblem]:
    d = 6
    box = SearchSpace({f"x{i}": Float(0.0, 1.0) for i in range(d)})
    out = {
        f"zdt{k}": MOProblem(f"zdt{k}", box, functools.partial(zdt, k, d=d), (1.1, 10.0))
        for k in (1, 2, 3)
    }
    for m in (2, 3):
        ref = 1.1 * (1.0 + 0.25 * (d - m + 1))
        out[f"dtlz2_m{m}"] = MOProblem(
            f"dtlz2_m{m}", box, functools.partial(dtlz2, d=d, m=m), (ref,) * m
        )
    mlp_space = SearchSpace(
        {
            "layers": Int(1, 2),
            "width": Int(2, 64, log=True),
            "lr": Float(1e-4, 1e-1, log=True),
            "alpha": Float(1e-6, 1e-1, log=True),
        }
    )
    out["mlp_digits"] = MOProblem("mlp_digits", mlp_space, mlp_digits, (1.0, 5.0))
    return out


def _optuna_sampler(method: str, seed: int) -> Any:
    import optuna

    if method == "optuna_nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if method == "optuna_tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if method == "optuna_gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def run_cell(method: str, problem: MOProblem, seed: int, budget: int) -> dict[str, Any]:
    """The hypervolume of one method's run and its suggestion times."""
    losses, times = [], []
    m = len(problem.reference)
    if method.startswith("optuna_"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        sampler = _optuna_sampler(method, seed)
        study = optuna.create_study(directions=["minimize"] * m, sampler=sampler)
        dists = optuna_distributions(problem.space)
        for _ in range(budget):
            t0 = time.perf_counter()
            trial = study.ask(dists)
            times.append(time.perf_counter() - t0)
            values = problem.objective(trial.params)
            study.tell(trial, list(values))
            losses.append(values)
    else:
        tuner = make_tuner(method, problem.space, mode=["min"] * m, seed=seed, max_trials=budget)
        while True:
            t0 = time.perf_counter()
            params = tuner.suggest()
            times.append(time.perf_counter() - t0)
            if params is None:
                break
            values = problem.objective(params)
            tuner.report_result(params, values)
            losses.append(values)
        times.pop()  # the final None
    hv = hypervolume(np.array(losses), problem.reference)
    return {"hv": hv, "ms": 1000 * float(np.median(times[-10:]))}


def summarize(rows: list[dict[str, Any]]) -> bool:
    """Print the tables; return whether one of our methods has the best mean rank."""
    from scipy.stats import rankdata

    methods = [m for m in OURS + OPTUNA + ["optuna_gp"] if any(r["method"] == m for r in rows)]
    cells: dict[tuple[str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        cells[(r["problem"], r["seed"])][r["method"]] = r
    complete = {k: v for k, v in cells.items() if all(m in v for m in methods)}
    names = sorted({p for p, _ in complete})
    print(f"{len(complete)} complete (problem, seed) cells; methods {methods}")
    print("\nmedian hypervolume (higher is better):")
    print(f"{'problem':<12}" + "".join(f"{m:>14}" for m in methods))
    for p in names:
        med = [np.median([v[m]["hv"] for (q, _), v in complete.items() if q == p]) for m in methods]
        print(f"{p:<12}" + "".join(f"{x:>14.4f}" for x in med))
    ranks: dict[str, list[float]] = defaultdict(list)
    for v in complete.values():
        for m, rk in zip(methods, rankdata([-v[m]["hv"] for m in methods], method="average")):
            ranks[m].append(float(rk))
    print("\nmean rank over problems x seeds (1 = best), median ms per suggestion:")
    for m in sorted(methods, key=lambda m: np.mean(ranks[m])):
        ms = np.median([v[m]["ms"] for v in complete.values()])
        print(f"  {m:<14} rank {np.mean(ranks[m]):5.2f}   {ms:8.1f} ms")
    best = min(methods, key=lambda m: np.mean(ranks[m]))
    ok = best in OURS
    print(f"\ngoal (one of ours has the best mean rank): {'met' if ok else 'NOT met'} ({best})")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--problems", nargs="*", default=None)
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--optuna-gp", action="store_true", help="add Optuna's GPSampler (slow)")
    ap.add_argument("--out", type=Path, default=None, help="append every run as JSON lines")
    args = ap.parse_args()
    probs = problems()
    names = args.problems or list(probs)
    methods = args.methods or OURS + OPTUNA + (["optuna_gp"] if args.optuna_gp else [])
    rows = []
    for p in names:
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            for method in methods:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # Optuna's experimental warnings
                    res = run_cell(method, probs[p], seed, args.budget)
                row = {"problem": p, "seed": seed, "method": method, **res}
                rows.append(row)
                if args.out:
                    with args.out.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
            print(f"done {p} seed {seed}", file=sys.stderr, flush=True)
    print(f"budget {args.budget} trials per run, seeds {args.seed_start}..")
    summarize(rows)


if __name__ == "__main__":
    main()
