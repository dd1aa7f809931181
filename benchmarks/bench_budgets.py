"""Benchmark (issue 17): ``auto`` vs Optuna's samplers at budgets 30-500, sequential or parallel.

Problems outside the project's tuning set: the BBOB-like functions of ``_functions_bbob.py``
(rotated ellipsoid, rotated Rastrigin, bi-Rastrigin, Gallagher's peaks, Katsuura, rotated
Rosenbrock) in 2-20 dimensions. One run of ``max(budgets)`` trials per (problem, seed, method);
the best value after the first ``b`` trials is the result for budget ``b``. ``auto`` is built
with ``budget`` = the run's length, as a sweep with that ``n_trials`` builds it (so on the long
problems it is CMA-ES from the first trial: see ``tuners/_auto.py``; run ``--methods gp,...``
to see the GP there). Budgets of ``--long-from`` (default 500) and more run only on
``--long-problems``.

``--in-flight K`` keeps K trials pending: K suggestions first, then each report (of the oldest
pending trial) is followed by one new suggestion -- as K asynchronous workers that take equally
long. Optuna's methods ask K trials before telling; ``optuna_tpe_cl`` is
``TPESampler(constant_liar=True)``; ``cmaes_plain`` is our CMA-ES without its lq surrogate.

Printed per budget: mean rank of every method over the (problem, seed) cells (1 = best, ties
share), wins/losses of the first method (``auto`` by default) against each other method, and
the median milliseconds per suggestion over the 10 suggestions before the budget (cells of the
first seed, run one at a time, when ``--jobs`` > 1). Then the goals: the first method has the
best mean rank at every budget, and its ms per suggestion at 200 trials is <= 1/5 of
``optuna_gp``'s.

Run (see benchmarks/README.md, section 14):
``python benchmarks/bench_budgets.py --seeds 5 --seed-start 1000 --jobs 2``
``python benchmarks/bench_budgets.py --in-flight 4 --budgets 60 --methods auto,gp,tpe,...``
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import sys
import time
import warnings
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _functions import Problem, optuna_distributions
from _functions_bbob import FUNCTIONS, bbob_problem
from bench_tuners import _append

from hpo_lightning import make_tuner

DEFAULT_PROBLEMS = [
    "ellipsoid_rot5",
    "ellipsoid_rot10",
    "rastrigin_rot5",
    "bi_rastrigin5",
    "gallagher5",
    "gallagher10",
    "katsuura5",
    "rosenbrock_rot10",
    "rastrigin_rot2",
    "gallagher20",
]
LONG_PROBLEMS = ["ellipsoid_rot5", "gallagher5", "bi_rastrigin5"]


def problem(name: str) -> Problem:
    base = name.rstrip("0123456789")
    if base not in FUNCTIONS:
        raise SystemExit(f"unknown problem {name!r}: use one of {sorted(FUNCTIONS)} + a dimension")
    return bbob_problem(base, int(name[len(base) :]))


def _optuna_sampler(method: str, seed: int) -> Any:
    import optuna

    if method == "optuna_tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if method == "optuna_tpe_cl":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if method == "optuna_gp":
        return optuna.samplers.GPSampler(seed=seed)
    if method == "optuna_cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    raise SystemExit(f"unknown Optuna method {method!r}")


class _Runner:
    """ask / tell over our tuners and Optuna's studies alike."""

    def __init__(self, method: str, prob: Problem, seed: int, budget: int) -> None:
        self.optuna = method.startswith("optuna_")
        if self.optuna:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.ERROR)
            self.study = optuna.create_study(sampler=_optuna_sampler(method, seed))
            self.dists = optuna_distributions(prob.space)
        else:
            # as a sweep builds it: ``auto`` chooses by the planned number of trials
            options: dict[str, Any] = {"budget": budget} if method == "auto" else {}
            if method == "cmaes_plain":  # CMA-ES without its lq surrogate
                method, options = "cmaes", {"surrogate": False}
            self.tuner = make_tuner(method, prob.space, mode="min", seed=seed, **options)

    def ask(self) -> Any:
        return self.study.ask(self.dists) if self.optuna else self.tuner.suggest()

    def tell(self, handle: Any, value: float) -> None:
        if self.optuna:
            self.study.tell(handle, value)
        else:
            self.tuner.report_result(handle, value)

    def params(self, handle: Any) -> dict[str, Any]:
        return handle.params if self.optuna else handle


def run_cell(method: str, prob: Problem, seed: int, budget: int, in_flight: int) -> dict[str, Any]:
    """Best-so-far curve (in report order) and the seconds of every suggestion."""
    runner = _Runner(method, prob, seed, budget)
    values: list[float] = []
    times: list[float] = []
    queue: deque[Any] = deque()

    def ask() -> None:
        t0 = time.perf_counter()
        queue.append(runner.ask())
        times.append(time.perf_counter() - t0)

    for _ in range(min(in_flight, budget)):
        ask()
    while queue:
        handle = queue.popleft()
        value = prob.objective(runner.params(handle))
        runner.tell(handle, value)
        values.append(value)
        if len(times) < budget:
            ask()
    return {"best": np.minimum.accumulate(values).tolist(), "s": times}


def _task(args: tuple[str, str, int, int, int]) -> dict[str, Any]:
    method, pname, seed, budget, in_flight = args
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental warnings
        res = run_cell(method, problem(pname), seed, budget, in_flight)
    return {"method": method, "problem": pname, "seed": seed, **res}


def summarize(rows: list[dict[str, Any]], budgets: list[int], methods: list[str]) -> bool:
    """Print the tables per budget; return whether the goals hold."""
    from scipy.stats import rankdata

    lead = methods[0]
    cells: dict[tuple[str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        cells[(r["problem"], r["seed"])][r["method"]] = r
    timed = [r for r in rows if r.get("alone")] or rows
    goals: dict[str, bool] = {}
    for b in budgets:
        done = {
            k: v
            for k, v in cells.items()
            if all(m in v and len(v[m]["best"]) >= b for m in methods)
        }
        if not done:
            continue
        ranks: dict[str, list[float]] = defaultdict(list)
        wl = {m: [0, 0] for m in methods}
        for v in done.values():
            vals = np.array([v[m]["best"][b - 1] for m in methods])
            for m, rk in zip(methods, rankdata(vals, method="average")):
                ranks[m].append(float(rk))
            for m in methods[1:]:
                wl[m][0] += vals[0] < v[m]["best"][b - 1]
                wl[m][1] += vals[0] > v[m]["best"][b - 1]
        ms = {
            m: 1000
            * float(
                np.median(
                    [
                        np.median(r["s"][b - 10 : b])
                        for r in timed
                        if r["method"] == m and len(r["s"]) >= b
                    ]
                )
            )
            for m in methods
        }
        probs = sorted({p for p, _ in done})
        print(f"\nbudget {b}: {len(done)} cells ({len(probs)} problems)")
        print(f"  method          mean rank   {lead} wins/losses   ms/suggest at {b}")
        for m in sorted(methods, key=lambda m: np.mean(ranks[m])):
            w = "" if m == lead else f"{wl[m][0]:>5} / {wl[m][1]:<5}"
            print(f"  {m:<14}{np.mean(ranks[m]):>10.2f}   {w:>16}   {ms[m]:>12.1f}")
        mean = {m: float(np.mean(ranks[m])) for m in methods}
        goals[f"{lead} has the best mean rank at {b}"] = mean[lead] <= min(mean.values())
        if b == 200 and "optuna_gp" in ms:
            ratio = ms["optuna_gp"] / ms[lead]
            print(f"  optuna_gp / {lead} ms per suggestion at 200: {ratio:.1f}x")
            goals[f"{lead} ms/suggest <= 1/5 of optuna_gp's at 200"] = ratio >= 5.0
    print("\nmedian best value per problem at each problem's largest budget:")
    for p in sorted({p for p, _ in cells}):
        per = {
            m: [v[m]["best"][-1] for (q, _), v in cells.items() if q == p and m in v]
            for m in methods
        }
        n = max(len(v) for v in per.values())
        print(
            f"  {p:<18}"
            + "".join(f"{m} {np.median(per[m]):.3g}  " for m in methods if per[m])
            + f"({n} seeds)"
        )
    lines = [f"  [{'met' if ok else 'NOT met'}] {k}" for k, ok in goals.items()]
    print("\ngoals:\n" + "\n".join(lines))
    return all(goals.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="30,60,200,500")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed-start", type=int, default=0, help="first seed (use a held-out range)")
    ap.add_argument(
        "--long-from", type=int, default=500, help="budgets >= this: long problems only"
    )
    ap.add_argument("--problems", default=",".join(DEFAULT_PROBLEMS))
    ap.add_argument("--long-problems", default=",".join(LONG_PROBLEMS))
    ap.add_argument("--methods", default="auto,optuna_gp,optuna_tpe,optuna_cmaes")
    ap.add_argument("--in-flight", type=int, default=1, help="pending trials (parallel workers)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default="/tmp/bench_budgets.jsonl")
    ap.add_argument("--summary", default=None, help="only print the tables of a JSONL file")
    args = ap.parse_args(argv)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    methods = args.methods.split(",")
    if args.summary:
        rows = [json.loads(line) for line in Path(args.summary).read_text().splitlines()]
        return 0 if summarize(rows, budgets, methods) else 1
    short = [b for b in budgets if b < args.long_from] or budgets[:1]
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    tasks = []
    for s in seeds:
        for p in args.problems.split(","):
            longest = budgets[-1] if p in args.long_problems.split(",") else short[-1]
            tasks += [(m, p, s, longest, args.in_flight) for m in methods]
    print(f"{len(tasks)} runs: seeds {seeds[0]}-{seeds[-1]}, in flight {args.in_flight}")
    Path(args.out).write_text("")
    # the first seed's cells run one at a time: their milliseconds are the ones printed
    first = [t for t in tasks if t[2] == seeds[0]]
    rows = [_append(args.out, {**_task(t), "alone": True}) for t in first]
    rest = [t for t in tasks if t[2] != seeds[0]]
    if args.jobs > 1:
        from multiprocessing import Pool

        with Pool(args.jobs) as pool:
            rows += [_append(args.out, r) for r in pool.imap_unordered(_task, rest)]
    else:
        rows += [_append(args.out, _task(t)) for t in rest]
    return 0 if summarize(rows, budgets, methods) else 1


if __name__ == "__main__":
    raise SystemExit(main())
