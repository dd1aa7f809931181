"""Benchmark 2 (issue 2): sample efficiency of our TPE vs random search vs Optuna's TPE.

For each problem in ``_functions.PROBLEMS`` and each seed, every method gets ``--budget``
evaluations (sequential ask/tell); we record the best value found. Printed: the median best
value per method and problem, the mean rank of each method (rank 1 = best of the three on one
problem and seed, ties share the mean rank), and whether the issue's goals hold:

* our TPE beats random search on every problem (median best value), and
* our TPE has a better (lower) mean rank than Optuna's default ``TPESampler``.

Run: ``python benchmarks/bench_sample_efficiency.py [--seeds 20] [--budget 60]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _functions import PROBLEMS, Problem, optuna_distributions

from hpo_lightning import make_tuner


def run_ours(name: str, problem: Problem, seed: int, budget: int) -> float:
    tuner = make_tuner(name, problem.space, mode="min", seed=seed, max_trials=budget)
    best = np.inf
    while (params := tuner.suggest()) is not None:
        value = problem.objective(params)
        tuner.report_result(params, value)
        best = min(best, value)
    return float(best)


def run_optuna(problem: Problem, seed: int, budget: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    dists = optuna_distributions(problem.space)
    for _ in range(budget):
        trial = study.ask(dists)
        study.tell(trial, problem.objective(trial.params))
    return float(study.best_value)


METHODS: dict[str, Callable[[Problem, int, int], float]] = {
    "tpe": lambda p, s, b: run_ours("tpe", p, s, b),
    "random": lambda p, s, b: run_ours("random", p, s, b),
    "optuna_tpe": run_optuna,
}


def mean_ranks(best: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean rank of each method over the rows (rank 1 = lowest value; ties share ranks)."""
    from scipy.stats import rankdata

    names = list(best)
    table = np.stack([best[m] for m in names], axis=1)  # rows: (problem, seed)
    ranks = rankdata(table, axis=1)
    return {m: float(ranks[:, i].mean()) for i, m in enumerate(names)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--problems", nargs="*", default=list(PROBLEMS))
    args = ap.parse_args(argv)

    all_best: dict[str, list[float]] = {m: [] for m in METHODS}
    medians: dict[str, dict[str, float]] = {}
    print(f"sample efficiency: {args.seeds} seeds, budget {args.budget}; median best value")
    print(f"{'problem':<12} {'optimum':>9} " + " ".join(f"{m:>11}" for m in METHODS))
    for pname in args.problems:
        problem = PROBLEMS[pname]
        t0 = time.perf_counter()
        per_method = {
            m: [fn(problem, seed, args.budget) for seed in range(args.seeds)]
            for m, fn in METHODS.items()
        }
        medians[pname] = {m: float(np.median(v)) for m, v in per_method.items()}
        for m, v in per_method.items():
            all_best[m].extend(v)
        row = " ".join(f"{medians[pname][m]:>11.4f}" for m in METHODS)
        print(f"{pname:<12} {problem.optimum:>9.4f} {row}   ({time.perf_counter() - t0:.0f} s)")

    ranks = mean_ranks({m: np.array(v) for m, v in all_best.items()})
    print("mean rank (1 = best): " + ", ".join(f"{m} {r:.2f}" for m, r in ranks.items()))
    beats_random = all(medians[p]["tpe"] < medians[p]["random"] for p in medians)
    beats_optuna = ranks["tpe"] < ranks["optuna_tpe"]
    met = {True: "MET", False: "NOT MET"}
    print(f"goal: TPE beats random on every problem (median best): {met[beats_random]}")
    print(f"goal: TPE mean rank < Optuna TPE mean rank: {met[beats_optuna]}")
    return 0 if beats_random and beats_optuna else 1


if __name__ == "__main__":
    raise SystemExit(main())
