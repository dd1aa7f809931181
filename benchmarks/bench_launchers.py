"""Issue 12 benchmarks: the Ray and Slurm launchers.

1. Per-trial overhead, Ray launcher vs Ray Tune's ``Tuner``: the same trivial trainable (returns
   its parameter), the same local Ray instance (2 CPUs), one trial at a time. Each side runs a
   small and a large sweep; the per-trial overhead is the marginal cost
   ``(wall(large) - wall(small)) / (large - small)``, so each side's one-time start-up (actors,
   imports, Tune's experiment set-up) cancels out. Goal: ours <= 1/5 of Ray Tune's.
2. Speed-up: ``sleep(0.5)`` trials on 2 actors vs 1 (wall time, start-up included; the steady
   state from the store's trial timestamps beside it). Goal: >= 1.8x.
3. Slurm (a real local Slurm from ``tests/_slurm.py``, or the cluster in ``$SLURM_CONF``): wall
   time of a 20-trial sweep as a job array against the sum of its trials' run times, with
   2 tasks running 10 trials each, and with 20 tasks of one trial each (2 at a time).

Run:  python benchmarks/bench_launchers.py            (about 7 minutes on 2 busy cores)
      python benchmarks/bench_launchers.py --quick    (a smoke run)
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hpo_lightning as hl
from hpo_lightning import TrialState

HERE = Path(__file__).resolve().parent
SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def trivial(params: dict, callback: object) -> float:
    return float(params["x"])


def sleeper(params: dict, callback: object, seconds: float = 0.5) -> float:
    time.sleep(seconds)
    return float(params["x"])


def tune_trivial(config: dict) -> dict:
    return {"x": float(config["x"])}


def run_ours(tmp: Path, name: str, n: int, workers: int, **kw: Any) -> tuple[float, list[Any]]:
    """Wall seconds of a Ray-launched sweep, and its stored trials."""
    sweep = hl.Sweep(
        name=name,
        objective=kw.pop("objective", "bench_launchers:trivial"),
        space=SPACE,
        monitor="x",
        n_trials=n,
        n_workers=workers,
        tuner="random",
        seed=0,
        storage=str(tmp / f"{name}.db"),
        launcher=kw.pop("launcher", {"name": "ray"}),
        resources={"cpus_per_trial": 1},
        base_dir=str(HERE),
        **kw,
    )
    started = time.perf_counter()
    result = sweep.run(progress="quiet")
    wall = time.perf_counter() - started
    trials = sweep.trials()
    sweep.close()
    done = result.n_complete
    if done != n:
        raise RuntimeError(f"{name}: {done} of {n} trials complete ({result.stopped})")
    return wall, trials


def run_tune(tmp: Path, n: int) -> float:
    from ray import tune

    run_config_cls = getattr(tune, "RunConfig", None)
    if run_config_cls is None:  # older Ray
        from ray.train import RunConfig as run_config_cls
    tuner = tune.Tuner(
        tune_trivial,
        param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=1),
        run_config=run_config_cls(storage_path=str(tmp / "tune"), verbose=0),
    )
    started = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - started
    if grid.num_errors or len(grid) != n:
        raise RuntimeError(f"Ray Tune: {len(grid)} results, {grid.num_errors} errors")
    return wall


def steady(trials: list[Any]) -> float:
    """Seconds from the first trial's start to the last trial's end."""
    done = [t for t in trials if t.state is TrialState.COMPLETE]
    return max(t.finished_at for t in done) - min(t.created_at for t in done)


GOALS: list[tuple[str, bool]] = []


def bench_overhead(tmp: Path, small: int, large: int) -> None:
    w_small, _ = run_ours(tmp, "ovh-small", small, 1)
    w_large, _ = run_ours(tmp, "ovh-large", large, 1)
    ours = (w_large - w_small) / (large - small)
    t_small = run_tune(tmp, small)
    t_large = run_tune(tmp, large)
    theirs = (t_large - t_small) / (large - small)
    print(f"1. per-trial overhead, trivial trainable, 1 at a time, {small} and {large} trials")
    for who, a, b, per in (
        ("Ray launcher", w_small, w_large, ours),
        ("Ray Tune", t_small, t_large, theirs),
    ):
        print(f"   {who:12s}  wall {a:6.1f} s / {b:6.1f} s -> {per * 1000:7.1f} ms/trial")
    print(f"   ratio ours / Ray Tune = {ours / theirs:.3f}  (goal <= 0.2)")
    GOALS.append(("Ray launcher per-trial overhead <= 1/5 of Ray Tune's", ours / theirs <= 0.2))


def bench_speedup(tmp: Path, n: int) -> None:
    w1, t1 = run_ours(tmp, "one", n, 1, objective="bench_launchers:sleeper")
    w2, t2 = run_ours(tmp, "two", n, 2, objective="bench_launchers:sleeper")
    print(f"2. {n} sleep(0.5) trials on Ray actors")
    print(f"   1 actor   wall {w1:6.1f} s   (first start to last end {steady(t1):6.1f} s)")
    print(f"   2 actors  wall {w2:6.1f} s   (first start to last end {steady(t2):6.1f} s)")
    print(
        f"   speed-up  wall {w1 / w2:.2f}x, steady state {steady(t1) / steady(t2):.2f}x "
        "(goal >= 1.8x)"
    )
    GOALS.append(("2 actors >= 1.8x faster than 1 (steady state)", steady(t1) / steady(t2) >= 1.8))


def bench_slurm(tmp: Path, n: int) -> None:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from _slurm import LocalSlurm, why_not

    cluster = None
    if not os.environ.get("SLURM_CONF"):
        reason = why_not()
        if reason:
            print(f"3. Slurm: skipped ({reason})")
            return
        cluster = LocalSlurm(Path(tempfile.mkdtemp(prefix="hpo-slurm-")))
        cluster.start()
        os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        print(f"3. Slurm job arrays, {n} sleep(1) trials, 2 tasks at a time")
        for tasks in (2, n):
            launcher = {
                "name": "slurm",
                "folder": str(tmp / f"jobs{tasks}"),
                "poll_s": 0.5,
                "array_parallelism": 2,
            }
            wall, trials = run_ours(
                tmp,
                f"slurm{tasks}",
                n,
                tasks,
                objective="bench_launchers:sleeper",
                objective_args={"seconds": 1.0},
                launcher=launcher,
            )
            total = sum(t.finished_at - t.created_at for t in trials)
            print(
                f"   {tasks:2d} tasks: wall {wall:6.1f} s, sum of trial run times {total:5.1f} s "
                f"(/2 = {total / 2:5.1f} s), wall / ideal = {wall / (total / 2):.2f}"
            )
    finally:
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(cluster.root, ignore_errors=True)
            os.environ.pop("SLURM_CONF", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with few trials")
    parser.add_argument("--skip", nargs="*", default=[], choices=["overhead", "speedup", "slurm"])
    args = parser.parse_args()
    logging.getLogger("hpo_lightning").setLevel(logging.ERROR)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throw-away local instance
    import ray

    small, large, n_sleep, n_slurm = (3, 8, 10, 6) if args.quick else (10, 40, 200, 20)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if {"overhead", "speedup"} - set(args.skip):
            ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
            try:
                if "overhead" not in args.skip:
                    bench_overhead(tmp, small, large)
                if "speedup" not in args.skip:
                    bench_speedup(tmp, n_sleep)
            finally:
                ray.shutdown()
        if "slurm" not in args.skip:
            bench_slurm(tmp, n_slurm)
    for goal, met in GOALS:
        print(f"goal: {goal}: {'MET' if met else 'NOT MET'}")
    sys.exit(0 if all(met for _, met in GOALS) else 1)


if __name__ == "__main__":
    main()
