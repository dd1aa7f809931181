"""Benchmark (issue 5): MLflow logging overhead, MLflowTracker per epoch vs Optuna's MLflowCallback.

Both log to a local ``sqlite:///`` tracking URI in a temporary folder (schema created before
timing). Printed, in ms:

* **ours, callback side, per epoch** -- what training waits for: ``on_event(EpochStart)`` +
  ``on_event(EpochEnd)`` with ``--metrics`` scalars, median and p95 over all epochs. Goal <= 5.
* **ours, MLflow thread, per epoch and per trial** -- the MLflow work the background thread does
  (log_batch per epoch; run creation, params, final state, best per trial), from the wall time
  of draining the queue, so the cost is shown, not hidden.
* **ours, inline log_batch per epoch** -- the same epoch batch written synchronously, i.e. what
  the callback would cost without the queue.
* **epoch wall time** of a small torch workload (12 256x256 matmuls) without and with the
  tracker (its thread shares the CPU, so this is the overhead training really sees).
* **Optuna MLflowCallback per trial** -- time of its ``__call__`` (one run per trial, params and
  the final value; it logs no per-epoch metrics), median over ``--trials`` trials.
* **server unreachable** (issue 19) -- wall time of a whole 2-worker sweep (``--outage-trials``
  trials of 0.1 s) without MLflow, with ``mlflow:`` on a closed port, and on a port that accepts
  connections but never answers (a hung server), median over ``--repeats`` runs; the added
  seconds per sweep are the cost of the outage (goal <= 5 s), beside the warnings it printed.

Run: ``python benchmarks/bench_mlflow_overhead.py [--trials 20] [--epochs 10] [--metrics 6]
[--outage-trials 8] [--repeats 3] [--only-outage]``.
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from hpo_lightning import Trial, TrialState
from hpo_lightning.events import EpochEnd, EpochStart, TrainingFinish
from hpo_lightning.tracking import MLflowTracker
from hpo_lightning.tracking._mlflow_runs import MlflowRuns

DEFINITION = {
    "name": "bench",
    "space": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
    "tuner": {"name": "random", "options": {}},
    "scheduler": None,
    "monitor": "val_loss",
    "mode": "min",
    "n_trials": 20,
    "seed": 0,
}


def fresh_uri(folder: Path, name: str) -> str:
    import mlflow

    uri = f"sqlite:///{folder / name}"
    mlflow.MlflowClient(uri).search_experiments()  # create the schema before timing
    return uri


def metrics_at(epoch: int, n: int) -> dict[str, float]:
    return {"val_loss": 1.0 / (epoch + 1), **{f"m{i}": float(epoch * i) for i in range(n - 1)}}


def bench_ours(uri: str, trials: int, epochs: int, n_metrics: int) -> dict[str, float]:
    tracker = MLflowTracker(uri, "bench-ours", artifacts=False)
    tracker.sweep_started("bench", DEFINITION)
    tracker.flush()
    per_epoch: list[float] = []
    clock = time.perf_counter
    started = clock()
    for n in range(trials):
        trial = Trial("bench", n, {"lr": 10.0 ** -(1 + n % 4), "layers": n % 3 + 1})
        for e in range(epochs):
            t0 = clock()
            tracker.on_event(EpochStart(trial, epoch=e))
            tracker.on_event(EpochEnd(trial, epoch=e, metrics=metrics_at(e, n_metrics)))
            per_epoch.append(clock() - t0)
        tracker.on_event(
            TrainingFinish(
                trial, best_metric=1.0 / epochs, state=TrialState.COMPLETE, epochs=epochs
            )
        )
    published = clock()
    assert tracker.flush(600), "the MLflow thread did not drain in 10 minutes"
    drained = clock()
    tracker.close()
    assert tracker.dropped == 0, "MLflow calls failed during the benchmark"
    thread_s = drained - started  # the thread ran from the first event to the drain
    ms = np.array(per_epoch) * 1e3
    return {
        "callback_median_ms": float(np.median(ms)),
        "callback_p95_ms": float(np.percentile(ms, 95)),
        "thread_per_epoch_ms": thread_s * 1e3 / (trials * epochs),
        "thread_per_trial_ms": thread_s * 1e3 / trials,
        "publish_s": published - started,
        "drain_after_publish_s": drained - published,
    }


def bench_inline(uri: str, epochs: int, n_metrics: int) -> float:
    """Median ms of one epoch's log_batch written synchronously (no queue)."""
    runs = MlflowRuns(uri, "bench-inline")
    parent = runs.parent("bench", DEFINITION)
    child = runs.child(parent, "bench", 0, {"lr": 0.01})
    out = []
    for e in range(epochs * 3):
        t0 = time.perf_counter()
        runs.log_epochs(child, {e: metrics_at(e, n_metrics)}, int(time.time() * 1000))
        out.append(time.perf_counter() - t0)
    return float(np.median(out) * 1e3)


def bench_training(uri: str | None, epochs: int, n_metrics: int) -> float:
    """Median wall ms of an epoch of torch work, with the tracker (started beforehand) or not."""
    tracker = None
    if uri:
        tracker = MLflowTracker(uri, "bench-train", artifacts=False)
        tracker.sweep_started("bench-train", DEFINITION)
        tracker.flush()  # MLflow is imported and connected when the sweep starts, not mid-epoch
    torch.manual_seed(0)
    a = torch.randn(256, 256)
    out = []
    for n in range(3):
        trial = Trial("bench-train", n, {"lr": 0.01})
        for e in range(epochs):
            t0 = time.perf_counter()
            for _ in range(12):
                a = torch.tanh(a @ a.T / 256)
            if tracker is not None:
                tracker.on_event(EpochStart(trial, epoch=e))
                tracker.on_event(EpochEnd(trial, epoch=e, metrics=metrics_at(e, n_metrics)))
            out.append(time.perf_counter() - t0)
        if tracker is not None:
            tracker.on_event(TrainingFinish(trial, best_metric=0.5, epochs=epochs))
    if tracker is not None:
        tracker.close()
    return float(np.median(out) * 1e3)


def bench_optuna(uri: str, trials: int) -> float:
    import optuna
    from optuna_integration import MLflowCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    callback = MLflowCallback(tracking_uri=uri, metric_name="val_loss")
    times: list[float] = []

    def timed(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        t0 = time.perf_counter()
        callback(study, trial)
        times.append(time.perf_counter() - t0)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 0.1, log=True)
        trial.suggest_int("layers", 1, 3)
        return lr

    study = optuna.create_study(study_name="bench-optuna", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(objective, n_trials=trials, callbacks=[timed])
    return float(np.median(times) * 1e3)


def _outage_objective(params: dict[str, float], callback: object) -> float:
    time.sleep(0.1)
    return (params["lr"] - 0.01) ** 2


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def _outage_sweep(folder: Path, tag: str, uri: str | None, trials: int) -> tuple[float, int]:
    """Wall seconds of a 2-worker sweep, and the warnings its parent logged."""
    import hpo_lightning as hl

    handler = _Warnings()
    logging.getLogger("hpo_lightning").addHandler(handler)
    started = time.perf_counter()
    try:
        res = hl.run_sweep(
            _outage_objective,
            name=f"outage-{tag}",
            space={"lr": hl.Float(1e-4, 0.1, log=True)},
            monitor="loss",
            n_trials=trials,
            n_workers=2,
            tuner="random",
            seed=0,
            storage=str(folder / f"outage-{tag}.db"),
            mlflow={"tracking_uri": uri, "experiment": "bench"} if uri else None,
            progress="quiet",
        )
    finally:
        logging.getLogger("hpo_lightning").removeHandler(handler)
    assert res.n_complete == trials, res
    return time.perf_counter() - started, handler.count


def bench_outage(folder: Path, trials: int, repeats: int) -> dict[str, tuple[list[float], int]]:
    """Wall seconds of each run (and warnings of the last run) per case: none, closed, hung.

    The cases alternate run by run, so a machine that slows down mid-benchmark slows all three.
    """
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connections are refused
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # the kernel completes handshakes; nobody ever reads or answers
    cases = {
        "none": None,
        "closed": f"http://127.0.0.1:{closed_port}",
        "hung": f"http://127.0.0.1:{hung.getsockname()[1]}",
    }
    out: dict[str, tuple[list[float], int]] = {name: ([], 0) for name in cases}
    try:
        for i in range(repeats):
            for name, uri in cases.items():
                wall, warned = _outage_sweep(folder, f"{name}{i}", uri, trials)
                out[name] = (out[name][0] + [wall], warned)
    finally:
        hung.close()
    return out


def print_outage(res: dict[str, tuple[list[float], int]], trials: int, repeats: int) -> None:
    base = res["none"][0]
    print(
        f"MLflow server unreachable: 2-worker sweep of {trials} trials x 0.1 s, {repeats} runs "
        "each, median (min) wall time (goal: <= 5 s added per sweep)"
    )
    med, low = statistics.median(base), min(base)
    print(f"  without MLflow                   {med:.1f} s ({low:.1f} s)")
    for name, label in (("closed", "closed port (refused)"), ("hung", "hung (accepts, no answer)")):
        walls, warned = res[name]
        print(
            f"  {label:<32} {statistics.median(walls):.1f} s ({min(walls):.1f} s)  added "
            f"{statistics.median(walls) - med:+.1f} s ({min(walls) - low:+.1f} s); "
            f"{warned} warning(s) logged by the parent"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--metrics", type=int, default=6)
    parser.add_argument("--outage-trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only-outage", action="store_true", help="only the unreachable case")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        outage = bench_outage(Path(tmp), args.outage_trials, args.repeats)
    if args.only_outage:
        print_outage(outage, args.outage_trials, args.repeats)
        return
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        folder = Path(tmp)
        ours = bench_ours(fresh_uri(folder, "ours.db"), args.trials, args.epochs, args.metrics)
        inline = bench_inline(fresh_uri(folder, "inline.db"), args.epochs, args.metrics)
        base = bench_training(None, args.epochs, args.metrics)
        loaded = bench_training(fresh_uri(folder, "train.db"), args.epochs, args.metrics)
        optuna_ms = bench_optuna(fresh_uri(folder, "optuna.db"), args.trials)
    n = args.trials * args.epochs
    print(
        f"MLflow on a local sqlite:/// URI; {args.trials} trials x {args.epochs} epochs x "
        f"{args.metrics} metrics ({n} epochs)"
    )
    print(
        f"  ours, callback side per epoch   median {ours['callback_median_ms']:.3f} ms, "
        f"p95 {ours['callback_p95_ms']:.3f} ms   (goal <= 5 ms)"
    )
    print(
        f"  ours, MLflow thread             {ours['thread_per_epoch_ms']:.1f} ms per epoch = "
        f"{ours['thread_per_trial_ms']:.0f} ms per trial (incl. run creation, state, best); "
        f"queue drained {ours['drain_after_publish_s']:.1f} s after the last event"
    )
    print(f"  ours, inline log_batch/epoch    median {inline:.1f} ms (what the queue saves)")
    print(
        f"  epoch of torch work (12 matmuls) without tracker {base:.1f} ms, with {loaded:.1f} ms "
        f"(median, +{loaded - base:.1f} ms)"
    )
    print(
        f"  Optuna MLflowCallback per trial median {optuna_ms:.1f} ms (final value only, "
        "no per-epoch metrics)"
    )
    print_outage(outage, args.outage_trials, args.repeats)


if __name__ == "__main__":
    main()
