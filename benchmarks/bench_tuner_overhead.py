"""Benchmark 1 (issue 2): tuner overhead, suggest + report per trial, ours vs Optuna's TPE.

One sequential run of ``--trials`` (default 1000) on the 6-D Hartmann space, ask/tell style,
per repeat. The time of ``suggest()`` + ``report_result()`` (Optuna: ``study.ask(distributions)``
+ ``study.tell``) is taken for every trial, the objective is excluded. "Per trial at N" is the
median over the ``--window`` trials just before trial N (default 20), so at 1000 it measures
what a trial costs when 1000 are known. Printed: medians over ``--repeats`` runs (different
seeds), in ms, for each tuner at 100 and at 1000 trials, and the ratio Optuna / ours.

Goal: ours <= 1.5 ms per trial at 1000 trials and >= 3x faster than Optuna's default TPESampler.

Run: ``python benchmarks/bench_tuner_overhead.py [--repeats 3] [--trials 1000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _functions import PROBLEMS
from bench_sample_efficiency import optuna_distributions

from hpo_lightning import make_tuner

PROBLEM = PROBLEMS["hartmann6"]


def time_ours(name: str, seed: int, n: int) -> np.ndarray:
    """Seconds spent in suggest + report_result for each of n trials."""
    tuner = make_tuner(name, PROBLEM.space, mode="min", seed=seed)
    out = np.empty(n)
    clock = time.perf_counter
    for i in range(n):
        t0 = clock()
        params = tuner.suggest()
        t1 = clock()
        assert params is not None
        value = PROBLEM.objective(params)
        t2 = clock()
        tuner.report_result(params, value)
        out[i] = (t1 - t0) + (clock() - t2)
    return out


def time_optuna(seed: int, n: int) -> np.ndarray:
    """Seconds spent in study.ask + study.tell for each of n trials (default TPESampler)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    dists = optuna_distributions(PROBLEM.space)
    out = np.empty(n)
    clock = time.perf_counter
    for i in range(n):
        t0 = clock()
        trial = study.ask(dists)
        t1 = clock()
        value = PROBLEM.objective(trial.params)
        t2 = clock()
        study.tell(trial, value)
        out[i] = (t1 - t0) + (clock() - t2)
    return out


def at(times: np.ndarray, n: int, window: int) -> float:
    """Median seconds per trial over the ``window`` trials before trial n."""
    return float(np.median(times[max(0, n - window) : n]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--window", type=int, default=20)
    args = ap.parse_args(argv)
    points = [p for p in (100, args.trials) if p <= args.trials]
    results: dict[str, dict[int, list[float]]] = {
        m: {p: [] for p in points} for m in ("tpe", "optuna_tpe")
    }
    for rep in range(args.repeats):
        for method in results:
            t = (
                time_ours("tpe", rep, args.trials)
                if method == "tpe"
                else time_optuna(rep, args.trials)
            )
            for p in points:
                results[method][p].append(at(t, p, args.window))
    print(
        f"tuner overhead, 6-D, suggest+report per trial (ms), median of {args.repeats} repeats "
        f"of the median over the {args.window} trials before N"
    )
    print(f"{'trials':>7} {'ours':>9} {'optuna':>9} {'optuna/ours':>12}")
    ms = {m: {p: 1e3 * float(np.median(v)) for p, v in r.items()} for m, r in results.items()}
    for p in points:
        ours, theirs = ms["tpe"][p], ms["optuna_tpe"][p]
        print(f"{p:>7} {ours:>9.3f} {theirs:>9.3f} {theirs / ours:>11.1f}x")
    last = points[-1]
    ok_abs = ms["tpe"][last] <= 1.5
    ok_rel = ms["optuna_tpe"][last] / ms["tpe"][last] >= 3.0
    print(f"goal: ours <= 1.5 ms per trial at {last} trials: {'MET' if ok_abs else 'NOT MET'}")
    print(f"goal: ours >= 3x faster than Optuna at {last} trials: {'MET' if ok_rel else 'NOT MET'}")
    return 0 if ok_abs and ok_rel else 1


if __name__ == "__main__":
    raise SystemExit(main())
