"""Coordination cost per trial: hpo_lightning's stores against Optuna's RDB storage.

W worker processes share one sweep and run a no-op objective until N trials exist in total.
Per trial an hpo_lightning worker does what the sweep driver does: claim (lock the sweep, read
its trials, add one RUNNING), log one epoch of metrics, finish it COMPLETE. An Optuna worker
runs ``study.optimize`` with a random sampler, one suggested float and one ``trial.report``,
on the same PostgreSQL server. Imports, connections and table creation happen before the clock
starts; the time is from a barrier releasing all workers to the last one finishing.

Run (PostgreSQL on 127.0.0.1:5432 with trust auth, as in the tests)::

    python benchmarks/bench_coordination.py --trials 200 --repeats 3

Prints the median ms per trial for 1, 4 and 8 workers and the throughput ratio against Optuna.
Goal: <= 10 ms per trial at 8 workers on PostgreSQL and >= 5x Optuna's throughput.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from hpo_lightning._trial import TrialState
from hpo_lightning.storage import open_storage

_CTX = multiprocessing.get_context("fork")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


# --- workers ------------------------------------------------------------------------------
def _hpo_worker(url: str, n_trials: int, seed: int, barrier: Any, out: Any) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    store = open_storage(url)
    sweep = store.get_sweep("bench")
    barrier.wait()
    done = 0
    while True:
        with store.claim(sweep.id) as c:
            if len(c.trials) >= n_trials:
                break
            trial = c.add_trial({"x": float(rng.random())}, tuner="random")
        store.log_metrics(trial.id, 0, {"loss": 0.0})
        store.finish_trial(trial.id, TrialState.COMPLETE, 0.0, epochs=1)
        done += 1
    out.put((time.monotonic(), done))
    store.close()


def _optuna_worker(url: str, n_trials: int, seed: int, barrier: Any, out: Any) -> None:
    import optuna
    from optuna.study import MaxTrialsCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name="bench", storage=url, sampler=optuna.samplers.RandomSampler(seed=seed)
    )

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        trial.report(0.0, step=0)
        return 0.0

    stop = MaxTrialsCallback(n_trials, states=None)  # counts every trial of every worker
    barrier.wait()
    study.optimize(objective, n_trials=n_trials, callbacks=[stop])
    out.put((time.monotonic(), 0))


def _race(worker: Callable[..., None], url: str, n_workers: int, n_trials: int) -> float:
    """Seconds from releasing ``n_workers`` workers to the last one finishing."""
    barrier, out = _CTX.Barrier(n_workers + 1), _CTX.Queue()
    procs = [
        _CTX.Process(target=worker, args=(url, n_trials, i, barrier, out)) for i in range(n_workers)
    ]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    start = time.monotonic()
    ends = [out.get(timeout=600)[0] for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a benchmark worker exited with {p.exitcode}")
    return max(ends) - start


# --- stores ---------------------------------------------------------------------------------
@contextmanager
def _pg_schema(admin_url: str) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in admin_url else "?"
    try:
        yield f"{admin_url}{sep}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@contextmanager
def _store(kind: str, admin_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    with _pg_schema(admin_url) as url:
        if kind == "optuna":
            import optuna

            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            optuna.create_study(study_name="bench", storage=url)
        yield url


def measure(kind: str, n_workers: int, n_trials: int, admin_url: str) -> tuple[float, int]:
    """(ms per trial, trials stored) for one fresh store."""
    with _store(kind, admin_url) as url:
        if kind == "optuna":
            seconds = _race(_optuna_worker, url, n_workers, n_trials)
            import optuna

            stored = len(optuna.load_study(study_name="bench", storage=url).trials)
        else:
            store = open_storage(url)
            sweep = store.create_sweep("bench", {"space": {"x": "uniform(0, 1)"}}, mode="min")
            seconds = _race(_hpo_worker, url, n_workers, n_trials)
            stored = len(store.get_trials(sweep.id))
            store.close()
    return 1000.0 * seconds / stored, stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="trials per run (all workers)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell; median shown")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="admin URL of the PostgreSQL db")
    args = parser.parse_args()

    kinds = {"sqlite": "hpo_lightning SQLite", "postgres": "hpo_lightning PostgreSQL",
             "optuna": "Optuna RDBStorage (PostgreSQL)"}  # fmt: skip
    med: dict[tuple[str, int], float] = {}
    print(f"no-op objective, {args.trials} trials per run, median of {args.repeats} runs")
    print(f"{'store':34s} {'workers':>7s} {'ms/trial':>9s} {'runs (ms/trial)':>28s}  trials")
    for kind, label in kinds.items():
        for w in args.workers:
            runs = [measure(kind, w, args.trials, args.pg_url) for _ in range(args.repeats)]
            med[kind, w] = statistics.median(ms for ms, _ in runs)
            shown = ", ".join(f"{ms:.2f}" for ms, _ in runs)
            counts = sorted({n for _, n in runs})
            print(f"{label:34s} {w:7d} {med[kind, w]:9.2f} {shown:>28s}  {counts}")
    print("\nthroughput ratio against Optuna RDBStorage on the same PostgreSQL (higher is better)")
    for w in args.workers:
        pg, sq = med["optuna", w] / med["postgres", w], med["optuna", w] / med["sqlite", w]
        print(f"  {w} workers: PostgreSQL store {pg:5.1f}x   SQLite store {sq:5.1f}x")
    w = max(args.workers)
    ok_ms, ok_ratio = med["postgres", w] <= 10.0, med["optuna", w] / med["postgres", w] >= 5.0
    print(
        f"goals at {w} workers: <= 10 ms/trial on PostgreSQL: {'met' if ok_ms else 'MISSED'} "
        f"({med['postgres', w]:.2f} ms); >= 5x Optuna: {'met' if ok_ratio else 'MISSED'} "
        f"({med['optuna', w] / med['postgres', w]:.1f}x)"
    )


if __name__ == "__main__":
    main()
