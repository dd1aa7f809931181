"""Issue 3 benchmarks: sweep-driver overhead vs Optuna, and parallel speed-up.

1. Driver overhead: a no-op objective, sequential, SQLite store; trials per second for
   hpo_lightning's Sweep and for Optuna's study.optimize with SQLite (RDB) storage, both with a
   random sampler so the driver (store + bookkeeping), not the tuner, is measured.
   Goal: >= 10x Optuna's rate.
2. Parallel speed-up: a sleep(1) objective, 16 trials, 4 worker processes vs 1.
   Goal: >= 3.5x.
3. The per-process Worker against the driver it replaced: the same no-op sweep run by this
   checkout and by ``--baseline`` (a git ref, default a5e33c9: main before the Worker), each in a
   fresh subprocess, alternating, median of ``--repeats``. Goal: no regression beyond noise.

Run:  python benchmarks/bench_sweep.py [--trials 300] [--repeats 3] [--baseline REF]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hpo_lightning as hl

SPACE = {
    "x": {"type": "float", "low": 0.0, "high": 1.0},
    "y": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
    "n": {"type": "int", "low": 1, "high": 64},
    "c": ["a", "b", "c"],
}


def noop(params: dict, callback: object) -> float:
    return 0.0


def sleep_one(params: dict, callback: object) -> float:
    time.sleep(1.0)
    return 0.0


def ours(n: int, workdir: Path, tuner: str = "random") -> float:
    sweep = hl.Sweep(
        name="bench",
        objective=noop,
        space=SPACE,
        monitor="loss",
        n_trials=n,
        storage=str(workdir / f"ours-{time.time_ns()}.db"),
        tuner=tuner,
        seed=0,
    )
    t0 = time.perf_counter()
    res = sweep.run(progress="quiet")
    dt = time.perf_counter() - t0
    sweep.close()
    assert res.n_complete == n
    return n / dt


def optuna_rate(n: int, workdir: Path, sampler: str = "random") -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    smp = (
        optuna.samplers.RandomSampler(seed=0)
        if sampler == "random"
        else optuna.samplers.TPESampler(seed=0)
    )
    study = optuna.create_study(
        storage=f"sqlite:///{workdir}/optuna-{time.time_ns()}.db", sampler=smp
    )

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        trial.suggest_float("y", 1e-4, 1.0, log=True)
        trial.suggest_int("n", 1, 64)
        trial.suggest_categorical("c", ["a", "b", "c"])
        return 0.0

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n)
    return n / (time.perf_counter() - t0)


def parallel(workers: int, n: int, workdir: Path) -> float:
    sweep = hl.Sweep(
        name="par",
        objective=sleep_one,
        space=SPACE,
        monitor="loss",
        n_trials=n,
        storage=str(workdir / f"par-{workers}-{time.time_ns()}.db"),
        tuner="random",
        seed=0,
    )
    t0 = time.perf_counter()
    res = sweep.run(n_workers=workers, progress="quiet")
    dt = time.perf_counter() - t0
    sweep.close()
    assert res.n_complete == n, res
    return dt


_TIMED = """
import sys, time, hpo_lightning as hl
def noop(params, callback):
    return 0.0
space = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "c": ["a", "b", "c"]}
for name, n in (("warm-up", 5), ("b", int(sys.argv[1]))):  # the warm-up imports Lightning
    sweep = hl.Sweep(name=name, objective=noop, space=space, monitor="loss", n_trials=n,
                     storage=sys.argv[2], tuner="random", seed=0)
    t0 = time.perf_counter()
    res = sweep.run(progress="quiet")
    assert res.n_complete == n
print(1000 * (time.perf_counter() - t0) / int(sys.argv[1]))
"""


def checkout(ref: str, dest: Path) -> Path | None:
    """``hpo_lightning/`` of git ``ref`` extracted into ``dest`` (None outside a git checkout)."""
    root = Path(__file__).resolve().parent.parent
    try:
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", ref, "hpo_lightning"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"   (no baseline: cannot read {ref} from git: {exc})")
        return None
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def ms_per_trial(code_dir: Path, n: int, workdir: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(code_dir))
    db = workdir / f"w-{time.time_ns()}.db"
    out = subprocess.run(
        [sys.executable, "-c", _TIMED, str(n), str(db)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=workdir,
    )
    return float(out.stdout.strip().splitlines()[-1])


def worker_vs_baseline(ref: str, n: int, repeats: int, work: Path) -> None:
    print(
        f"\n3. Worker path vs {ref}: no-op objective, {n} sequential trials, SQLite, "
        f"median of {repeats} alternating runs"
    )
    base = checkout(ref, work / "baseline")
    if base is None:
        return
    here = Path(__file__).resolve().parent.parent
    new, old = [], []
    for _ in range(repeats):
        new.append(ms_per_trial(here, n, work))
        old.append(ms_per_trial(base, n, work))
    m_new, m_old = statistics.median(new), statistics.median(old)
    spread = (max(old) - min(old)) / m_old if m_old else 0.0
    print(f"   this checkout (Worker) {m_new:7.3f} ms/trial   runs {[round(v, 3) for v in new]}")
    print(f"   {ref:22s} {m_old:7.3f} ms/trial   runs {[round(v, 3) for v in old]}")
    ratio = m_new / m_old
    verdict = "met" if ratio <= 1 + max(0.1, spread) else "NOT met"
    print(
        f"   ratio new/old {ratio:.3f} (goal: no regression beyond noise "
        f"{max(0.1, spread):.0%}: {verdict})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parallel-trials", type=int, default=16)
    ap.add_argument("--baseline", default="a5e33c9", help="git ref of the driver to compare")
    args = ap.parse_args()
    logging.getLogger("hpo_lightning").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours(20, work)  # warm-up: imports
        rows = []
        for label, fn in (
            ("hpo_lightning Sweep (random)", lambda: ours(args.trials, work)),
            ("hpo_lightning Sweep (tpe)", lambda: ours(args.trials, work, "tpe")),
            ("optuna study.optimize sqlite (random)", lambda: optuna_rate(args.trials, work)),
            ("optuna study.optimize sqlite (tpe)", lambda: optuna_rate(args.trials, work, "tpe")),
        ):
            rates = [fn() for _ in range(args.repeats)]
            rows.append((label, statistics.median(rates)))
        print(
            f"\n1. Driver overhead: no-op objective, {args.trials} sequential trials, SQLite, "
            f"median of {args.repeats}"
        )
        for label, rate in rows:
            print(f"   {label:40s} {rate:9.1f} trials/s   {1000 / rate:7.2f} ms/trial")
        ratio_r = rows[0][1] / rows[2][1]
        ratio_t = rows[1][1] / rows[3][1]
        print(
            f"   ratio vs optuna: random {ratio_r:.1f}x, tpe {ratio_t:.1f}x  "
            f"(goal >= 10x: {'met' if ratio_r >= 10 else 'NOT met'})"
        )

        t1 = parallel(1, args.parallel_trials, work)
        t4 = parallel(4, args.parallel_trials, work)
        print(f"\n2. Parallel: sleep(1) objective, {args.parallel_trials} trials")
        print(
            f"   1 worker {t1:6.2f} s   4 workers {t4:6.2f} s   speed-up {t1 / t4:.2f}x  "
            f"(goal >= 3.5x: {'met' if t1 / t4 >= 3.5 else 'NOT met'})"
        )
        worker_vs_baseline(args.baseline, args.trials, args.repeats, work)


if __name__ == "__main__":
    main()
