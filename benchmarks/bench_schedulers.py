"""Benchmark (issue 4): early stopping on the digits example, ours vs Optuna's Hyperband pruner.

Per seed, ``--trials`` (default 20) trials of up to ``--epochs`` (default 20) epochs of the
digits MLP (examples/digits.py), each variant with the same seed:

* ours: TPETuner + HPOCallback + ExperimentTracker (a temporary SQLite file) with no scheduler,
  the median rule, ``auto``, ASHA and Hyperband with their defaults (max = epochs: first rung
  after ceil(epochs / 9) epochs, reduction factor 3, a peer minimum), the textbook ASHA (first
  rung after 1 epoch), and ASHA with a tuner that treats stopped trials as failures (what
  feeding PRUNED trials to TPE by the value they reached is worth);
* Optuna: TPESampler + HyperbandPruner + optuna_integration.PyTorchLightningPruningCallback.

Printed per variant, medians over ``--seeds`` seeds: epochs trained in total, wall time, best
validation accuracy (the best epoch of any trial), and the ratios to "none" and to Optuna.
Goals: ASHA trains <= 50 % of the no-scheduler epochs with best accuracy within 0.5 points of
it, and reaches at least Optuna's best accuracy with fewer epochs than Optuna.

Batches of 128 keep an epoch short. Run:
``python benchmarks/bench_schedulers.py [--seeds 3] [--trials 20] [--epochs 20]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from digits import DigitsData, DigitsMLP, quiet_trainer

from hpo_lightning import (
    Categorical,
    ExperimentTracker,
    Float,
    HPOCallback,
    Int,
    SearchSpace,
    TPETuner,
    TrialState,
)
from hpo_lightning.schedulers import Scheduler, make_scheduler

SPACE = SearchSpace(
    {
        "lr": Float(1e-4, 3e-1, log=True),
        "hidden": Int(8, 128, log=True),
        "dropout": Float(0.0, 0.5),
        "optimizer": Categorical(["adam", "sgd"]),
    }
)


class Recorder(pl.Callback):
    """Counts the epochs a fit trained and keeps the best val_acc it saw (same for all rows)."""

    def __init__(self) -> None:
        self.epochs = 0
        self.best = 0.0

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.epochs += 1

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking and "val_acc" in trainer.callback_metrics:
            self.best = max(self.best, float(trainer.callback_metrics["val_acc"]))


class PrunedAsFailedTPE(TPETuner):
    """TPE that learns nothing from stopped trials but their region (they join the bad set)."""

    def report_result(self, params: Any, metric: Any, *, state: Any = None, **kw: Any) -> None:
        if state is TrialState.PRUNED:
            state = TrialState.FAILED
        super().report_result(params, metric, state=state or TrialState.COMPLETE, **kw)


def fit(params: dict[str, Any], callbacks: list[Any], data: DigitsData, epochs: int, seed: int):
    torch.manual_seed(seed)
    trainer = quiet_trainer(max_epochs=epochs, callbacks=callbacks, num_sanity_val_steps=0)
    trainer.fit(DigitsMLP(**params), datamodule=data)


def run_ours(
    scheduler: Scheduler | None, tuner_cls: type[TPETuner], seed: int, args: Any, folder: Path
) -> tuple[int, float, float]:
    data = DigitsData(batch_size=128, seed=0)
    tuner = tuner_cls(SPACE, mode="max", seed=seed, n_startup_trials=8)
    name = getattr(scheduler, "name", "none")
    tracker = ExperimentTracker(folder / f"{name}-{tuner_cls.__name__}-{seed}.db", sweep=name)
    cb = HPOCallback(tuner, monitor="val_acc", mode="max", tracker=tracker, scheduler=scheduler)
    epochs, best = 0, 0.0
    start = time.perf_counter()
    for i in range(args.trials):
        params = tuner.suggest()
        assert params is not None
        rec = Recorder()
        fit(params, [cb, rec], data, args.epochs, seed * 1000 + i)
        epochs, best = epochs + rec.epochs, max(best, rec.best)
    wall = time.perf_counter() - start
    tracker.close()
    return epochs, wall, best


def run_optuna(seed: int, args: Any) -> tuple[int, float, float]:
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    class OptunaPruning(PyTorchLightningPruningCallback, pl.Callback):  # type: ignore[misc]
        """Optuna's callback (written for lightning.pytorch) for a pytorch_lightning Trainer."""

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = DigitsData(batch_size=128, seed=0)
    pruner = optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=args.epochs, reduction_factor=3
    )
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=8)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    totals = {"epochs": 0, "best": 0.0}

    def objective(trial: optuna.Trial) -> float:
        params = {
            "lr": trial.suggest_float("lr", 1e-4, 3e-1, log=True),
            "hidden": trial.suggest_int("hidden", 8, 128, log=True),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "optimizer": trial.suggest_categorical("optimizer", ["adam", "sgd"]),
        }
        rec = Recorder()
        try:
            cbs = [OptunaPruning(trial, monitor="val_acc"), rec]
            fit(params, cbs, data, args.epochs, seed * 1000 + trial.number)
        finally:
            totals["epochs"] += rec.epochs
            totals["best"] = max(totals["best"], rec.best)
        return rec.best

    start = time.perf_counter()
    study.optimize(objective, n_trials=args.trials)
    return int(totals["epochs"]), time.perf_counter() - start, float(totals["best"])


def variants(args: Any, seed: int) -> dict[str, Callable[[Path], tuple[int, float, float]]]:
    budget = {"max_epochs": args.epochs}  # the defaults: first rung ceil(epochs / 9), eta 3
    textbook = {"min_epochs": 1, "reduction_factor": 3, "max_epochs": args.epochs}
    ours = {
        "none": (None, TPETuner),
        "median": (make_scheduler("median", warmup_epochs=2, min_trials=3), TPETuner),
        "auto": (make_scheduler("auto", **budget), TPETuner),
        "asha": (make_scheduler("asha", **budget), TPETuner),
        "asha, min 1 epoch": (make_scheduler("asha", **textbook), TPETuner),
        "hyperband": (make_scheduler("hyperband", seed=seed, **budget), TPETuner),
        "asha, pruned=failed": (make_scheduler("asha", **budget), PrunedAsFailedTPE),
    }
    out: dict[str, Callable[[Path], tuple[int, float, float]]] = {
        k: (lambda folder, s=s, t=t: run_ours(s, t, seed, args, folder))
        for k, (s, t) in ours.items()
    }
    out["optuna hyperband"] = lambda folder: run_optuna(seed, args)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*treespec.*")
    logging.getLogger("hpo_lightning").setLevel(logging.ERROR)
    results: dict[str, list[tuple[int, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for name, run in variants(args, seed).items():
                results.setdefault(name, []).append(run(Path(tmp)))
                e, w, b = results[name][-1]
                print(
                    f"  seed {seed} {name:<22} epochs {e:4d}  {w:6.1f} s  best {b:.4f}", flush=True
                )
    med = {k: np.median(np.array(v), axis=0) for k, v in results.items()}
    none, opt = med["none"], med["optuna hyperband"]
    print(f"\nmedians over {args.seeds} seed(s), {args.trials} trials x <= {args.epochs} epochs")
    print(
        f"{'variant':<22} {'epochs':>7} {'wall s':>7} {'best acc':>9} {'ep/none':>8} "
        f"{'ep/optuna':>9} {'acc-none pt':>11}"
    )
    for k, (e, w, b) in med.items():
        print(
            f"{k:<22} {e:7.0f} {w:7.1f} {100 * b:8.2f}% {e / none[0]:8.2f} {e / opt[0]:9.2f} "
            f"{100 * (b - none[2]):+11.2f}"
        )
    asha = med["asha"]
    goals = {
        "ASHA epochs <= 50% of no scheduler": asha[0] <= 0.5 * none[0],
        "ASHA best acc within 0.5 pt of no scheduler": 100 * (none[2] - asha[2]) <= 0.5,
        "ASHA best acc >= Optuna's": asha[2] >= opt[2],
        "ASHA epochs < Optuna's": asha[0] < opt[0],
    }
    for goal, ok in goals.items():
        print(f"goal: {goal}: {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
