"""Issue 13 benchmarks: resume after kills, checkpoint overhead, PBT vs ASHA vs random.

1. Kill drill: ``hpo-lightning sweep`` of 5 trials x ``--epochs`` epochs (wine MLP, slowed to
   ~0.15 s per epoch). Each trial's worker is killed with SIGKILL once, after a seeded number of
   epochs (5 kills); the sweep's launcher starts a new worker, which reruns the trial. Counted
   from markers every finished training epoch leaves: the epochs trained twice, with
   ``checkpoints:`` (resume) and without (restart). Goal: resume re-trains <= 10 % of the work
   the kills cut short (the epochs the killed attempts had finished).
2. Checkpoint overhead on the digits MLP: the time of the callback's checkpoint step per epoch
   (trainer.save_checkpoint, the store record, pruning old files), median, against the median
   epoch time of the same fits.
3. PBT vs ASHA vs random at equal total epochs: an SGD digits MLP (lr 1e-3..1 log, momentum,
   weight decay) for ``--pbt-epochs`` epochs; random runs 8 trials, PBT a population of 8
   (interval 1, quantile 0.25), ASHA runs trials until it has trained as many epochs. Median
   over ``--seeds`` seeds of the best validation loss (lower is better), and total epochs.

Run:  python benchmarks/bench_checkpoints.py [--epochs 6] [--seeds 5] [--pbt-epochs 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
for _name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "hpo_lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)
warnings.filterwarnings("ignore")

import hpo_lightning as hl  # noqa: E402
from hpo_lightning.storage import open_storage  # noqa: E402

# --- objectives (imported by the sweep's workers from this file) ---------------------------


def wine_epochs(params: dict[str, Any], callback: Any, max_epochs: int = 10) -> None:
    """A small wine MLP whose every finished training epoch appends a line to a marker file."""
    import pytorch_lightning as pl
    import torch
    from sklearn.datasets import load_wine
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = load_wine(return_X_y=True)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    ds = TensorDataset(x, torch.tensor(y))
    log_file = os.environ["BENCH_EPOCH_LOG"]

    class Net(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(13, 16), nn.ReLU(), nn.Linear(16, 3))

        def training_step(self, batch: Any, _: int) -> Any:
            xb, yb = batch
            return nn.functional.cross_entropy(self.net(xb), yb)

        def validation_step(self, batch: Any, _: int) -> None:
            time.sleep(0.15)
            xb, yb = batch
            self.log("val_acc", (self.net(xb).argmax(-1) == yb).float().mean())

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=params["lr"], momentum=0.9)

    class EpochMarker(pl.Callback):
        """Before the sweep's callback (which checkpoints): an epoch counts as finished once
        its training and validation ran, whether or not its checkpoint got written."""

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            trial = json.loads(os.environ.get("HPO_LIGHTNING_TRIAL", '{"number": -1}'))["number"]
            with open(log_file, "a", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()} {trial} {trainer.current_epoch}\n")

    trainer = pl.Trainer(
        max_epochs=max_epochs,
        callbacks=[EpochMarker(), callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        num_sanity_val_steps=0,
    )
    trainer.fit(Net(), DataLoader(ds, batch_size=32, shuffle=True), DataLoader(ds, batch_size=256))


def digits_sgd(params: dict[str, Any], callback: Any, max_epochs: int = 6) -> None:
    """The digits MLP trained with SGD (momentum 0.9): learning rate and decay matter."""
    import torch
    from digits import DigitsData, DigitsMLP, quiet_trainer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    trainer = quiet_trainer(max_epochs=max_epochs, callbacks=[callback], accelerator="cpu")
    model = DigitsMLP(hidden=32, optimizer="sgd", dropout=0.0, **params)
    trainer.fit(model, datamodule=DigitsData())


# --- 1. kill drill ------------------------------------------------------------------------

DRILL = """\
name: drill
objective: bench_checkpoints:wine_epochs
objective_args: {{max_epochs: {epochs}}}
monitor: val_acc
mode: max
n_trials: 5
seed: 0
tuner: random
{checkpoints}
space:
  lr: {{type: float, low: 0.01, high: 0.1, log: true}}
"""


def kill_drill(
    workdir: Path, *, resume: bool, epochs: int, kill_after: list[int]
) -> dict[str, int]:
    """Run the drill; return epochs trained in all, epochs lost by kills, epochs re-trained."""
    workdir.mkdir(parents=True)
    f = workdir / "drill.yaml"
    f.write_text(
        DRILL.format(epochs=epochs, checkpoints="checkpoints: {keep: best}" if resume else "")
    )
    log = workdir / "epochs.log"
    log.touch()
    env = dict(os.environ, PYTHONPATH=str(HERE), BENCH_EPOCH_LOG=str(log), OMP_NUM_THREADS="1")
    env.pop("HPO_LIGHTNING_STORAGE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpo_lightning", "sweep", str(f), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed: list[tuple[int, int]] = []  # (pid, trial number) of the attempts killed
    db = workdir / "hpo_lightning.db"
    try:
        while proc.poll() is None:
            time.sleep(0.05)
            if len(killed) == len(kill_after) or not db.exists():
                continue
            victim = _victim(db, kill_after[len(killed)])
            if victim is not None and victim[0] not in {pid for pid, _ in killed}:
                os.kill(victim[0], signal.SIGKILL)
                killed.append(victim)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [ln.split() for ln in log.read_text().splitlines()]
    lost = sum(1 for pid, trial, _ in lines if (int(pid), int(trial)) in killed)
    trained = len(lines)
    return {"trained": trained, "lost": lost, "retrained": trained - 5 * epochs}


def _victim(db: Path, after: int) -> tuple[int, int] | None:
    """(worker pid, number) of a first-attempt trial that has finished ``after`` epochs."""
    try:
        store = open_storage(db, create=False)
    except Exception:
        return None
    try:
        sweeps = store.list_sweeps()
        if not sweeps:
            return None
        for t in store.get_trials(sweeps[0].id, states=[hl.TrialState.RUNNING]):
            first = "retry_of" not in t.attrs and "resumes" not in t.attrs
            if first and t.epochs >= after and t.worker:
                return int(t.worker.rpartition(":")[2]), t.number
        return None
    finally:
        store.close()


# --- 2. checkpoint overhead -----------------------------------------------------------------


def overhead(workdir: Path, *, epochs: int, repeats: int) -> tuple[float, float]:
    """Median seconds of the checkpoint step per epoch, and median epoch seconds."""
    import pytorch_lightning as pl

    from hpo_lightning.sweep._checkpoints import TrialCheckpointer

    steps: list[float] = []
    epoch_times: list[float] = []
    original = TrialCheckpointer.after_epoch

    def timed(self: Any, *args: Any, **kw: Any) -> None:
        t0 = time.perf_counter()
        original(self, *args, **kw)
        steps.append(time.perf_counter() - t0)

    class EpochClock(pl.Callback):
        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            self.t0 = time.perf_counter()

        def on_validation_epoch_end(self, trainer: Any, module: Any) -> None:
            if not trainer.sanity_checking:
                epoch_times.append(time.perf_counter() - self.t0)

    def objective(params: dict[str, Any], callback: Any) -> None:
        import torch
        from digits import DigitsData, DigitsMLP, quiet_trainer

        torch.set_num_threads(1)
        trainer = quiet_trainer(max_epochs=epochs, callbacks=[EpochClock(), callback])
        trainer.fit(DigitsMLP(**params), datamodule=DigitsData())

    workdir.mkdir(parents=True)
    TrialCheckpointer.after_epoch = timed  # type: ignore[method-assign]
    try:
        hl.run_sweep(
            objective,
            name="overhead",
            space={"lr": hl.Float(1e-3, 1e-2, log=True)},
            monitor="val_acc",
            mode="max",
            n_trials=repeats,
            seed=0,
            tuner="random",
            storage=str(workdir / "overhead.db"),
            checkpoints={"keep": "best"},
            base_dir=str(workdir),
            progress="quiet",
        )
    finally:
        TrialCheckpointer.after_epoch = original  # type: ignore[method-assign]
    return statistics.median(steps), statistics.median(epoch_times)


# --- 3. PBT vs ASHA vs random -----------------------------------------------------------------

SGD_SPACE = {
    "lr": hl.Float(1e-3, 1.0, log=True),
    "weight_decay": hl.Float(0.0, 0.01),
}


def _common(workdir: Path, name: str, seed: int, epochs: int) -> dict[str, Any]:
    return dict(
        objective=digits_sgd,
        objective_args={"max_epochs": epochs},
        name=name,
        space=SGD_SPACE,
        monitor="val_loss",
        mode="min",
        seed=seed,
        tuner="random",
        storage=str(workdir / f"{name}.db"),
        base_dir=str(workdir),
    )


def _outcome(sweep: hl.Sweep) -> tuple[float, int]:
    trials = sweep.trials()
    values = [t.value for t in trials if t.value is not None]
    return min(values), sum(t.epochs for t in trials)


def compare(workdir: Path, *, seed: int, epochs: int, population: int) -> dict[str, tuple]:
    workdir.mkdir(parents=True)
    out: dict[str, tuple[float, int]] = {}
    rnd = hl.Sweep(n_trials=population, **_common(workdir, f"random-{seed}", seed, epochs))
    rnd.run(progress="quiet")
    out["random"] = _outcome(rnd)
    pbt = hl.Sweep(
        n_trials=population,
        scheduler={"name": "pbt", "population": population, "interval": 1, "quantile": 0.25},
        **_common(workdir, f"pbt-{seed}", seed, epochs),
    )
    pbt.run(progress="quiet")
    out["pbt"] = _outcome(pbt)
    asha = hl.Sweep(
        n_trials=10 * population,
        scheduler={"name": "asha", "min_epochs": 1, "reduction_factor": 3, "max_epochs": epochs},
        **_common(workdir, f"asha-{seed}", seed, epochs),
    )
    budget = population * epochs
    done = 0
    while _outcome_or_zero(asha) < budget and done < 10 * population:
        done += 1
        asha.run(progress="quiet", max_trials=done)
    out["asha"] = _outcome(asha)
    for s in (rnd, pbt, asha):
        s.close()
    return out


def _outcome_or_zero(sweep: hl.Sweep) -> int:
    return sum(t.epochs for t in sweep.trials())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6, help="epochs per trial in the kill drill")
    ap.add_argument("--overhead-epochs", type=int, default=8)
    ap.add_argument("--overhead-repeats", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--pbt-epochs", type=int, default=4)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--skip", nargs="*", default=[], choices=["drill", "overhead", "pbt"])
    args = ap.parse_args()
    goals: list[bool] = []
    rng = random.Random(13)
    kill_after = [rng.randint(2, args.epochs - 2) for _ in range(5)]
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as tmp:
        work = Path(tmp)
        if "drill" not in args.skip:
            print(f"1. kill drill: 5 trials x {args.epochs} epochs, kills after {kill_after}")
            for resume in (True, False):
                r = kill_drill(
                    work / f"drill-{resume}",
                    resume=resume,
                    epochs=args.epochs,
                    kill_after=kill_after,
                )
                share = r["retrained"] / r["lost"] if r["lost"] else float("nan")
                print(
                    f"   {'resume ' if resume else 'restart'}: {r['trained']} epochs trained, "
                    f"{r['lost']} finished by the killed attempts, {r['retrained']} re-trained "
                    f"({share:.0%} of the lost work)"
                )
                if resume:
                    met = r["lost"] > 0 and r["retrained"] <= 0.1 * r["lost"]
                    goals.append(met)
                    verdict = "MET" if met else "NOT MET"
                    print(f"   goal: resume re-trains <= 10% of the lost work: {verdict}")
        if "overhead" not in args.skip:
            step, epoch = overhead(
                work / "overhead", epochs=args.overhead_epochs, repeats=args.overhead_repeats
            )
            print(
                f"2. checkpoint step on the digits MLP: median {step * 1e3:.1f} ms per epoch, "
                f"median epoch {epoch * 1e3:.1f} ms, ratio {step / epoch:.1%}"
            )
        if "pbt" not in args.skip:
            rows: dict[str, list[tuple[float, int]]] = {"random": [], "asha": [], "pbt": []}
            for seed in range(args.seeds):
                got = compare(
                    work / f"cmp-{seed}",
                    seed=seed,
                    epochs=args.pbt_epochs,
                    population=args.population,
                )
                for k, v in got.items():
                    rows[k].append(v)
                shown = ", ".join(f"{k} {v[0]:.4f} ({v[1]} ep)" for k, v in got.items())
                print(f"   seed {seed}: best val_loss {shown}", flush=True)
            print(
                f"3. best val_loss, median of {args.seeds} seeds (lower is better), "
                f"SGD digits MLP, {args.population} x {args.pbt_epochs} epochs budget:"
            )
            for k, v in rows.items():
                med = statistics.median(x for x, _ in v)
                ep = statistics.median(e for _, e in v)
                wins = sum(1 for i in range(len(v)) if v[i][0] <= min(rows[o][i][0] for o in rows))
                print(f"   {k:7s} {med:.4f}  (median {ep:.0f} epochs; best on {wins} seeds)")

    if not all(goals):
        sys.exit(1)


if __name__ == "__main__":
    main()
