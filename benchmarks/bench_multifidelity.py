"""Benchmark (issue 17): early stopping + tuner pairings on real learning curves, equal epochs.

Six tasks train small scikit-learn models on its bundled data sets (nothing is downloaded):
an MLP on digits (a 600-image subset), wine, breast cancer and iris and a linear SGD classifier
on digits (validation log loss), and an MLP regressor on diabetes (validation MSE, targets
standardised); a diverged model's loss is capped at 10. Each task has a discrete grid
of a few hundred configurations; a configuration's learning curve (the validation loss after
each of ``--epochs`` epochs of ``partial_fit``) is computed once, deterministically, the first
time any method asks for it, and cached in a temporary directory for the run, so every method
reads the same curves.

Every method gets the same total budget, ``--budget`` full trainings (``budget * epochs``
epochs; a trial cut by the budget's end counts as not finished):

* ours, through the public objects a sweep composes (a tuner from ``make_tuner`` and a
  scheduler from ``make_scheduler``): each trial is suggested by the tuner, reports its value
  after every epoch, and after each epoch ``scheduler.decide(curve, others, mode="min")``
  decides exactly as the Lightning callback does (``others``: the curves of the earlier
  trials); a finished or stopped trial is reported to the tuner with
  ``report_result(params, reported_value(curve, state), state=..., step=...)`` as the sweep's
  worker does. Schedulers: none, median, asha, hyperband (their defaults, given the epochs),
  and ``auto``; tuners: random, tpe, auto (told to plan for ``budget`` trials without a
  scheduler and ``3 * budget`` with one, as a user's ``n_trials`` would, and, as a sweep tells
  it, the scheduler's ``expected_cost()`` of a trial; at the default budget it picks the GP).
  Also accepted by ``--methods``, not run by default: ``gp``, ``cmaes``, and the ablations
  ``auto-old`` (chooses as before issue 17, every trial counted as a full training: CMA-ES
  from 201 planned trials), ``tpe-old`` (the good set a tenth of all trials, not BOHB's) and
  ``tpe-rep`` (TPE that may re-suggest an evaluated configuration, as before issue 17).
* Optuna (``ask``/``tell``, ``trial.report`` and ``should_prune`` each epoch, the usual
  integration loop): TPESampler and RandomSampler with MedianPruner, SuccessiveHalvingPruner,
  HyperbandPruner(max_resource=epochs) and NopPruner, all with their defaults.

The score of a run is the best final validation loss (after all ``--epochs`` epochs) of the
trials that trained in full; a run that finishes none scores +inf. Printed: per method, the
mean rank over the task x seed instances (1 = best, ties share their mean rank), the median
score, the median number of trials and of epochs used; then the goals: each of our schedulers
with the ``auto`` tuner ranks ahead of Optuna's best pruner pairing, and no pairing ranks
below random search without stopping.

Run: ``nice -n 10 python benchmarks/bench_multifidelity.py [--seeds 5] [--seed-start 0]
[--budget 30] [--epochs 30] [--tasks digits_mlp,wine_mlp] [--methods auto+asha,...]
[--cache DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpo_lightning import Int, SearchSpace, TrialState
from hpo_lightning.schedulers import (
    Decision,
    LearningCurve,
    Scheduler,
    make_scheduler,
    reported_value,
)
from hpo_lightning.tuners import HyperparameterTuner, TPETuner, make_tuner

# --- tasks: real learning curves -------------------------------------------------------------

LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
MLP_GRID = {
    "lr": LRS,
    "hidden": (8, 32, 128),
    "alpha": (1e-5, 1e-3, 1e-1, 1.0),
    "batch": (32, 128, 512),
}
SGD_GRID = {
    "eta0": LRS,
    "alpha": (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
    "loss": ("log_loss", "modified_huber"),
    "schedule": ("constant", "invscaling", "adaptive"),
}


@dataclass(frozen=True)
class Task:
    """A data set, a model family and its configuration grid."""

    name: str
    data: str
    model: str  # "mlp", "mlp_reg" or "sgd"
    grid: dict[str, tuple[Any, ...]]

    def space(self) -> SearchSpace:
        """The tuners' space: one integer index per grid axis (ordered as listed)."""
        return SearchSpace({k: Int(0, len(v) - 1) for k, v in self.grid.items()})

    def config(self, params: dict[str, Any]) -> dict[str, Any]:
        return {k: v[int(params[k])] for k, v in self.grid.items()}


TASKS = (
    Task("digits_mlp", "digits", "mlp", MLP_GRID),
    Task("wine_mlp", "wine", "mlp", MLP_GRID),
    Task("cancer_mlp", "breast_cancer", "mlp", MLP_GRID),
    Task("iris_mlp", "iris", "mlp", MLP_GRID),
    Task("diabetes_mlp", "diabetes", "mlp_reg", MLP_GRID),
    Task("digits_sgd", "digits", "sgd", SGD_GRID),
)


def load_split(data: str) -> tuple[np.ndarray, ...]:
    """Standardised 70/30 train/validation split of a bundled scikit-learn data set."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = getattr(datasets, f"load_{data}")(return_X_y=True)
    if data == "digits":  # a third of it: a harder task and a cheaper curve
        keep = np.random.default_rng(0).permutation(len(y))[:600]
        X, y = X[keep], y[keep]
    strat = None if data == "diabetes" else y
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.3, random_state=0, stratify=strat)
    scaler = StandardScaler().fit(Xa)
    Xa, Xb = scaler.transform(Xa), scaler.transform(Xb)
    if data == "diabetes":
        mu, sd = ya.mean(), ya.std()
        ya, yb = (ya - mu) / sd, (yb - mu) / sd
    return Xa, Xb, ya, yb


class Curves:
    """Learning curves by (task, configuration), computed once and cached on disk."""

    def __init__(self, epochs: int, cache: Path) -> None:
        self.epochs = epochs
        self.cache = cache
        self._mem: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}
        self._data: dict[str, tuple[np.ndarray, ...]] = {}
        self.computed = 0

    def curve(self, task: Task, params: dict[str, Any]) -> np.ndarray:
        key = (task.name, tuple(int(params[k]) for k in task.grid))
        hit = self._mem.get(key)
        if hit is not None:
            return hit
        path = self.cache / f"{task.name}-{'-'.join(map(str, key[1]))}.json"
        if path.exists():
            values = np.array(json.loads(path.read_text()))
        else:
            values = self._train(task, task.config(params), seed=_config_seed(key))
            part = path.with_suffix(".part")
            part.write_text(json.dumps([float(v) for v in values]))
            part.replace(path)  # whole files only, should two runs share a cache
            self.computed += 1
        self._mem[key] = values
        return values

    def _train(self, task: Task, cfg: dict[str, Any], *, seed: int) -> np.ndarray:
        from sklearn.linear_model import SGDClassifier
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        if task.data not in self._data:
            self._data[task.data] = load_split(task.data)
        Xa, Xb, ya, yb = self._data[task.data]
        model: Any
        if task.model == "sgd":
            model = SGDClassifier(
                loss=cfg["loss"],
                alpha=cfg["alpha"],
                eta0=cfg["eta0"],
                learning_rate=cfg["schedule"],
                random_state=seed,
            )
        else:
            cls = MLPRegressor if task.model == "mlp_reg" else MLPClassifier
            model = cls(
                hidden_layer_sizes=(cfg["hidden"],),
                learning_rate_init=cfg["lr"],
                alpha=cfg["alpha"],
                batch_size=cfg["batch"],
                random_state=seed,
            )
        classes = None if task.model == "mlp_reg" else np.unique(ya)
        rng = np.random.default_rng(seed)
        out = np.empty(self.epochs)
        for e in range(self.epochs):
            order = rng.permutation(len(ya))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if classes is None:
                    model.partial_fit(Xa[order], ya[order])
                    err = float(np.mean((model.predict(Xb) - yb) ** 2))
                else:
                    model.partial_fit(Xa[order], ya[order], classes=classes)
                    proba = np.clip(model.predict_proba(Xb), 1e-7, 1.0)
                    picked = proba[np.arange(len(yb)), np.searchsorted(classes, yb)]
                    err = float(-np.mean(np.log(picked / proba.sum(axis=1))))
            out[e] = min(err, DIVERGED) if math.isfinite(err) else DIVERGED
        return out


DIVERGED = 10.0  # a diverged model's validation loss (log loss or MSE) is capped here


def _config_seed(key: tuple[str, tuple[int, ...]]) -> int:
    return int(hashlib.sha256(repr(key).encode()).hexdigest()[:8], 16)


# --- one run of a method ---------------------------------------------------------------------


@dataclass
class RunResult:
    score: float
    trials: int
    epochs: int


class Budget:
    """Epochs left to a run; a trial cut by it is not reported."""

    def __init__(self, epochs: int) -> None:
        self.left = epochs
        self.total = epochs

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


def run_ours(
    task: Task, curves: Curves, *, tuner: str, scheduler: str, seed: int, budget: int
) -> RunResult:
    """Our tuner + scheduler, decided after every epoch as the callback does."""
    epochs = curves.epochs
    sched: Scheduler = make_scheduler(scheduler, **_scheduler_options(scheduler, epochs, seed))
    tuner_opts: dict[str, Any] = {}
    if tuner.startswith("auto"):  # as a sweep builds it: n_trials and the scheduler's cost
        tuner_opts["budget"] = budget if scheduler == "none" else 3 * budget
        if tuner == "auto":  # "auto-old": the rule that counted every trial as a full one
            tuner_opts["trial_cost"] = trial_cost(sched)
    if tuner in ABLATIONS:
        tun: HyperparameterTuner = ABLATIONS[tuner](task.space(), mode="min", seed=seed)
    else:
        name = "auto" if tuner == "auto-old" else tuner
        tun = make_tuner(name, task.space(), mode="min", seed=seed, **tuner_opts)
    left = Budget(budget * epochs)
    others: list[LearningCurve] = []
    best, number = math.inf, 0
    while left.left > 0:
        params = tun.suggest()
        assert params is not None
        full = curves.curve(task, params)
        values: dict[int, float] = {}
        state: TrialState | None = TrialState.COMPLETE
        for e in range(epochs):
            if not left.take():
                state = None
                break
            values[e] = float(full[e])
            curve = LearningCurve.of(number, values)
            if sched.decide(curve, others, mode="min") is Decision.STOP:
                state = TrialState.PRUNED
                break
        if state is None:
            break
        curve = LearningCurve.of(number, values)
        step = curve.last_epoch if state is TrialState.PRUNED else None
        tun.report_result(params, reported_value(curve, state, mode="min"), state=state, step=step)
        if len(values) == epochs:
            best = min(best, float(full[-1]))
        others.append(curve)
        number += 1
    return RunResult(best, number, left.total - left.left)


def _scheduler_options(name: str, epochs: int, seed: int) -> dict[str, Any]:
    if name in ("asha", "hyperband", "auto"):
        opts: dict[str, Any] = {"max_epochs": epochs}
        if name == "hyperband":
            opts["seed"] = seed
        return opts
    return {}


def run_optuna(
    task: Task, curves: Curves, *, sampler: str, pruner: str, seed: int, budget: int
) -> RunResult:
    """Optuna's sampler + pruner with the ask/tell loop its integrations run."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    epochs = curves.epochs
    samplers: dict[str, Callable[[], Any]] = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    pruners: dict[str, Callable[[], Any]] = {
        "median": optuna.pruners.MedianPruner,
        "sha": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": lambda: optuna.pruners.HyperbandPruner(max_resource=epochs),
        "nop": optuna.pruners.NopPruner,
    }
    study = optuna.create_study(
        direction="minimize", sampler=samplers[sampler](), pruner=pruners[pruner]()
    )
    left = Budget(budget * epochs)
    best, number = math.inf, 0
    while left.left > 0:
        trial = study.ask()
        params = {k: trial.suggest_int(k, 0, len(v) - 1) for k, v in task.grid.items()}
        full = curves.curve(task, params)
        done, pruned = 0, False
        for e in range(epochs):
            if not left.take():
                break
            done += 1
            trial.report(float(full[e]), e)
            if trial.should_prune():
                pruned = True
                break
        if done < epochs and not pruned:
            break  # cut by the budget
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, float(full[-1]))
        if done == epochs:
            best = min(best, float(full[-1]))
        number += 1
    return RunResult(best, number, left.total - left.left)


# --- methods, ranks, report ------------------------------------------------------------------

OURS_TUNERS = ("random", "tpe", "auto")
# accepted by --methods, not run by default: the GP and CMA-ES themselves, and ablations of
# issue 17's changes: "auto-old" chooses as before (every trial counted as a full training),
# "tpe-old" draws its good set from a tenth of all trials (not BOHB's highest fidelity),
# "tpe-rep" may re-suggest a configuration it has evaluated
MORE_TUNERS = ("gp", "cmaes", "auto-old", "tpe-old", "tpe-rep")
OURS_SCHEDULERS = ("none", "median", "asha", "hyperband", "auto")
OPTUNA_SAMPLERS = ("tpe", "random")
OPTUNA_PRUNERS = ("median", "sha", "hyperband", "nop")
BASELINE = "random+none"


class _TPEOld(TPETuner):
    """Ablation: TPE's good set as before issue 17, the best tenth of all usable trials."""

    name = "tpe-old"

    def _fidelity_size(self, n: int) -> int:
        return int((self._rank0[:n] < 2).sum())


class _TPERepeats(TPETuner):
    """Ablation: TPE as before it skipped evaluated configurations of a grid (issue 17)."""

    name = "tpe-rep"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seen = None


ABLATIONS: dict[str, type[TPETuner]] = {"tpe-old": _TPEOld, "tpe-rep": _TPERepeats}


def all_methods() -> list[str]:
    ours = [f"{t}+{s}" for t, s in itertools.product(OURS_TUNERS, OURS_SCHEDULERS)]
    peers = [f"optuna-{t}+{p}" for t, p in itertools.product(OPTUNA_SAMPLERS, OPTUNA_PRUNERS)]
    return ours + peers


def known_methods() -> list[str]:
    more = [f"{t}+{s}" for t, s in itertools.product(MORE_TUNERS, OURS_SCHEDULERS)]
    return all_methods() + more


def trial_cost(sched: Scheduler) -> float | None:
    """What a sweep tells ``auto`` a trial costs under its scheduler."""
    return sched.expected_cost()


def run_method(method: str, task: Task, curves: Curves, *, seed: int, budget: int) -> RunResult:
    left, right = method.split("+")
    if left.startswith("optuna-"):
        return run_optuna(task, curves, sampler=left[7:], pruner=right, seed=seed, budget=budget)
    return run_ours(task, curves, tuner=left, scheduler=right, seed=seed, budget=budget)


def mean_ranks(scores: dict[str, list[float]]) -> dict[str, float]:
    """Mean rank (1 = best, lower loss better, ties averaged) over the instances."""
    from scipy.stats import rankdata

    methods = list(scores)
    table = np.array([scores[m] for m in methods])  # methods x instances
    ranks = np.array([rankdata(table[:, j]) for j in range(table.shape[1])]).T
    return {m: float(ranks[i].mean()) for i, m in enumerate(methods)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed-start", type=int, default=0, help="first seed (seeds are consecutive)")
    ap.add_argument("--budget", type=int, default=30, help="full trainings per run")
    ap.add_argument("--epochs", type=int, default=30, help="max epochs of a trial")
    ap.add_argument("--tasks", default=",".join(t.name for t in TASKS))
    ap.add_argument("--methods", default=",".join(all_methods()))
    ap.add_argument("--cache", default=None, help="keep the curves here (default: a temp dir)")
    args = ap.parse_args(argv)
    tasks = [t for t in TASKS if t.name in args.tasks.split(",")]
    methods = args.methods.split(",")
    unknown = set(methods) - set(known_methods())
    if unknown:
        ap.error(f"unknown methods {sorted(unknown)}; known: {known_methods()}")
    scores: dict[str, list[float]] = {m: [] for m in methods}
    trials: dict[str, list[int]] = {m: [] for m in methods}
    used: dict[str, list[int]] = {m: [] for m in methods}
    seconds: dict[str, float] = dict.fromkeys(methods, 0.0)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # small models: one BLAS thread each is fastest, and fair to share
    with tempfile.TemporaryDirectory(prefix="hpo-mf-curves-") as tmp:
        cache = Path(args.cache or tmp) / f"epochs{args.epochs}"
        cache.mkdir(parents=True, exist_ok=True)
        curves = Curves(args.epochs, cache)
        for task in tasks:
            for seed in range(args.seed_start, args.seed_start + args.seeds):
                for m in methods:
                    t0 = time.perf_counter()
                    r = run_method(m, task, curves, seed=seed, budget=args.budget)
                    seconds[m] += time.perf_counter() - t0
                    scores[m].append(r.score)
                    trials[m].append(r.trials)
                    used[m].append(r.epochs)
            print(f"# {task.name}: done ({curves.computed} curves trained so far)", flush=True)
    report(scores, trials, used, seconds, args)
    return 0


def report(
    scores: dict[str, list[float]],
    trials: dict[str, list[int]],
    used: dict[str, list[int]],
    seconds: dict[str, float],
    args: argparse.Namespace,
) -> None:
    ranks = mean_ranks(scores)
    n = len(next(iter(scores.values())))
    print(
        f"\n{n} instances (tasks x {args.seeds} seeds from {args.seed_start}), "
        f"budget {args.budget} x {args.epochs} epochs"
    )
    print(
        f"{'method':26s} {'mean rank':>9s} {'median score':>12s} {'trials':>7s} "
        f"{'epochs':>7s} {'s':>7s}"
    )
    for m in sorted(ranks, key=ranks.get):  # type: ignore[arg-type]
        print(
            f"{m:26s} {ranks[m]:9.2f} {np.median(scores[m]):12.4f} "
            f"{np.median(trials[m]):7.0f} {np.median(used[m]):7.0f} {seconds[m]:7.1f}"
        )
    peers = [m for m in ranks if m.startswith("optuna-") and not m.endswith("+nop")]
    if peers:
        best_peer = min(peers, key=ranks.get)  # type: ignore[arg-type]
        print(f"\nOptuna's best pruner pairing: {best_peer} ({ranks[best_peer]:.2f})")
        for m in ranks:
            if m.startswith("auto+") and not m.endswith("+none"):
                ok = ranks[m] < ranks[best_peer]
                print(f"  {m:22s} {ranks[m]:.2f}  {'ahead' if ok else 'NOT ahead'}")
    if BASELINE in ranks:
        below = [m for m in ranks if ranks[m] > ranks[BASELINE]]
        print(
            f"\nrandom search without stopping: {ranks[BASELINE]:.2f}; pairings ranked below it: "
            f"{', '.join(sorted(below)) or 'none'}"
        )
    paired_ablations(scores)


def paired_ablations(scores: dict[str, list[float]]) -> None:
    """For each method run with its ablation (``tpe`` and ``tpe-old`` or ``tpe-rep``, ``auto``
    and ``auto-old``): on how many instances it found the better, the worse or the same score."""
    for m in scores:
        left, right = m.split("+")
        for old in (f"{left}-{tag}+{right}" for tag in ("old", "rep")):
            if old not in scores:
                continue
            a, b = np.array(scores[m]), np.array(scores[old])
            print(
                f"{m} vs {old}: better on {int((a < b).sum())}, worse on "
                f"{int((a > b).sum())}, tied on {int((a == b).sum())} instances"
            )


if __name__ == "__main__":
    sys.exit(main())
