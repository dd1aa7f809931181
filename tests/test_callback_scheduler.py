"""HPOCallback + schedulers in real Lightning fits: bad trials stop early and are stored PRUNED.

The model is tiny and its validation curve is set by a ``quality`` hyper-parameter
(``val_loss = quality + 1 / (epoch + 1)``), so each test knows which trials a scheduler stops
and when. The DDP tests run 2 CPU processes (gloo) with ``ddp_spawn`` and with ``ddp``.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from hpo_lightning import ExperimentTracker, HPOCallback, TrialState
from hpo_lightning.exceptions import InvalidStorageError, UnknownNameError, UserInputError
from hpo_lightning.schedulers import (
    ASHAScheduler,
    Decision,
    EarlyStopper,
    LearningCurve,
    MedianStoppingScheduler,
)
from hpo_lightning.storage import Storage
from hpo_lightning.tuners import GridSearchTuner

MAX_EPOCHS = 8
# ASHA with eta=2 compares trials after 1, 2 and 4 epochs (epochs 0, 1, 3)
ASHA = {"min_epochs": 1, "reduction_factor": 2, "max_epochs": MAX_EPOCHS}


class CurveModel(pl.LightningModule):
    """One linear layer trained for real; logs ``val_loss = quality + 1/(epoch+1)``.

    Under DDP rank r adds ``rank_offset * r``, so ranks disagree about the value and only
    a decision taken once (on rank 0) and broadcast stops them together.
    """

    def __init__(self, quality: float, rank_offset: float = 0.0) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.quality = quality
        self.rank_offset = rank_offset

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        value = self.quality + 1.0 / (self.current_epoch + 1) + self.rank_offset * self.global_rank
        self.log("val_loss", torch.tensor(value))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class EpochRecorder(pl.Callback):
    """Writes, per rank, how many epochs it trained to ``<folder>/rank<r>.json``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.epochs = 0

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.epochs += 1

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        path = Path(self.folder) / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps({"epochs": self.epochs, "world": trainer.world_size}))


class EndProcessGroup(pl.Callback):
    """Destroys the process group when the fit is over (Lightning's teardown is done by
    then): a spawned rank that exits with it alive can abort in gloo's threads ("terminate
    called without an active exception"), as a DDP script's can (DDP_SCRIPT below)."""

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def loaders() -> tuple[Any, Any]:
    x = torch.linspace(0, 1, 8).reshape(4, 2)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    return loader, loader


def trainer(callbacks: list[Any], **kw: Any) -> pl.Trainer:
    options: dict[str, Any] = dict(
        max_epochs=MAX_EPOCHS,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    options.update(kw)
    return pl.Trainer(callbacks=callbacks, **options)


def run_sweep(callback: HPOCallback, tuner: GridSearchTuner) -> list[int]:
    """Fit one model per suggestion; the epochs each fit trained."""
    epochs = []
    while (params := tuner.suggest()) is not None:
        trainer([callback]).fit(CurveModel(params["quality"]), *loaders())
        epochs.append(callback.epochs)
    return epochs


# quality of each trial in order, and the epochs ASHA (eta=2, rungs after 1, 2, 4) lets it train:
# 0.5 first: full; 0.9 loses to 0.5 at rung 1; 0.2 best: full; 0.4: 2nd of 4 at rung 1 (keeps
# 2), 2nd of 3 at rung 2 (keeps 1); 0.3: 2nd of 5 at rung 1, 2nd of 4 at rung 2, 2nd of 3 at rung 4
QUALITIES = [0.5, 0.9, 0.2, 0.4, 0.3]
ASHA_EPOCHS = [8, 1, 8, 2, 4]


@pytest.mark.slow
def test_asha_stops_bad_trials_in_process() -> None:
    tuner = GridSearchTuner({"quality": QUALITIES})
    cb = HPOCallback(tuner, monitor="val_loss", mode="min", scheduler=ASHAScheduler(**ASHA))
    assert run_sweep(cb, tuner) == ASHA_EPOCHS
    # the tuner hears of pruned trials with the value they stopped at and the epoch reached
    obs = tuner.observations
    assert [o.state for o in obs] == [
        TrialState.PRUNED if e < MAX_EPOCHS else TrialState.COMPLETE for e in ASHA_EPOCHS
    ]
    pruned = obs[1]
    assert (pruned.step, pruned.value) == (0, pytest.approx(0.9 + 1.0))
    assert obs[3].step == 1 and obs[3].value == pytest.approx(0.4 + 0.5)


@pytest.mark.slow
def test_pruned_trials_are_stored_with_epochs_and_last_value(db_path: Path) -> None:
    tuner = GridSearchTuner({"quality": QUALITIES})
    tracker = ExperimentTracker(db_path, sweep="s")
    cb = HPOCallback(
        tuner, monitor="val_loss", mode="min", tracker=tracker, scheduler=ASHAScheduler(**ASHA)
    )
    assert run_sweep(cb, tuner) == ASHA_EPOCHS
    stored = tracker.trials("s")
    assert [t.epochs for t in stored] == ASHA_EPOCHS
    assert [t.state for t in stored] == [o.state for o in tuner.observations]
    assert stored[3].value == pytest.approx(0.4 + 1 / 2)  # its last value, at epoch 1
    assert "asha" in (stored[3].message or "") and "epoch 1" in (stored[3].message or "")
    assert sorted(tracker.storage.get_metrics(stored[3].id)) == [0, 1]  # nothing after the stop
    curves = tracker.storage.get_curves(tracker.storage.get_sweep("s").id, "val_loss")
    assert {n: len(c) for n, c in curves.items()} == dict(enumerate(ASHA_EPOCHS))
    tracker.close()


@pytest.mark.parametrize("with_store", [True, False], ids=["store", "memory"])
def test_each_finished_curve_is_built_once_for_the_scheduler(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, with_store: bool
) -> None:
    tuner = GridSearchTuner({"quality": QUALITIES})
    tracker = ExperimentTracker(db_path, sweep="s") if with_store else None
    cb = HPOCallback(
        tuner, monitor="val_loss", mode="min", tracker=tracker, scheduler=ASHAScheduler(**ASHA)
    )
    built: list[int] = []
    original = LearningCurve.of

    def counting(trial: int, values: Any) -> LearningCurve:
        assert cb.stopper is not None and cb.trial is not None
        if values is not cb.stopper.curve(cb.trial):  # another trial's, not the running one's
            built.append(trial)
        return original(trial, values)

    monkeypatch.setattr(LearningCurve, "of", counting)
    assert run_sweep(cb, tuner) == ASHA_EPOCHS  # the same decisions
    # trials 0-3 are the others of later trials at 1 + 8 + 2 + 4 epochs; each is built once
    assert sorted(built) == [0, 1, 2, 3]
    if tracker is not None:
        tracker.close()


@pytest.mark.slow
def test_other_curves_come_from_the_store(db_path: Path) -> None:
    """A trial of another process (only in the store) makes the first local trial lose."""
    tracker = ExperimentTracker(db_path, sweep="s")
    peer = tracker.start_trial({"quality": 0.0}, mode="min")
    for epoch in range(MAX_EPOCHS):
        tracker.storage.log_metrics(peer.id, epoch, {"val_loss": 0.1})  # type: ignore[arg-type]
    tuner = GridSearchTuner({"quality": [0.5]})
    cb = HPOCallback(tuner, monitor="val_loss", tracker=tracker, scheduler=ASHAScheduler(**ASHA))
    assert run_sweep(cb, tuner) == [1]
    assert tracker.trials("s")[1].state is TrialState.PRUNED
    tracker.close()


@pytest.mark.slow
def test_median_rule_in_a_fit_sequence() -> None:
    tuner = GridSearchTuner({"quality": [0.3, 0.2, 0.4, 0.9, 0.1]})
    median = MedianStoppingScheduler(warmup_epochs=2, min_trials=2)
    cb = HPOCallback(tuner, monitor="val_loss", scheduler=median)
    # 0.9: best after 3 epochs 1.233 > median of the running averages (0.811, 0.911, 1.011)
    assert run_sweep(cb, tuner) == [8, 8, 8, 3, 8]


class BrokenScheduler(ASHAScheduler):
    def decide(self, curve: Any, others: Any, *, mode: Any) -> Decision:
        raise RuntimeError("scheduler bug")


@pytest.mark.slow
def test_a_failing_scheduler_never_raises_through_fit(caplog: pytest.LogCaptureFixture) -> None:
    tuner = GridSearchTuner({"quality": [0.5]})
    cb = HPOCallback(tuner, monitor="val_loss", scheduler=BrokenScheduler())
    with caplog.at_level(logging.WARNING, logger="hpo_lightning"):
        assert run_sweep(cb, tuner) == [MAX_EPOCHS]
    assert "scheduler bug" in caplog.text
    assert tuner.observations[0].state is TrialState.COMPLETE


def test_a_scheduler_planned_for_other_max_epochs_is_named_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = ASHAScheduler(**{**ASHA, "max_epochs": 3 * MAX_EPOCHS})
    # a sweep: one callback per trial around the same early stopper (as a sweep's worker does)
    stopper = EarlyStopper(scheduler, monitor="val_loss", mode="min")
    with caplog.at_level(logging.WARNING, logger="hpo_lightning"):
        for _ in range(2):
            tuner = GridSearchTuner({"quality": [0.5, 0.9]})
            run_sweep(HPOCallback(tuner, monitor="val_loss", scheduler=stopper), tuner)
    expected = f"plans for max_epochs={3 * MAX_EPOCHS} but the Trainer stops at max_epochs="
    assert caplog.text.count(expected) == 1  # once per scheduler, not once per fit
    assert f"give the scheduler max_epochs={MAX_EPOCHS}" in caplog.text
    caplog.clear()
    tuner = GridSearchTuner({"quality": [0.5]})
    cb = HPOCallback(tuner, monitor="val_loss", scheduler=ASHAScheduler(**ASHA))
    with caplog.at_level(logging.WARNING, logger="hpo_lightning"):
        run_sweep(cb, tuner)
    assert "plans for max_epochs" not in caplog.text  # equal budgets: silent


def test_bad_scheduler_arguments_fail_before_training() -> None:
    with pytest.raises(UnknownNameError, match="known schedulers"):
        HPOCallback(None, monitor="val_loss", scheduler="ashaa")
    with pytest.raises(UserInputError, match="`scheduler` must be"):
        HPOCallback(None, monitor="val_loss", scheduler=42)  # type: ignore[arg-type]
    assert isinstance(HPOCallback(None, monitor="x", scheduler="asha").scheduler, ASHAScheduler)


def test_sqlite_store_pickles_without_its_connection(db_path: Path) -> None:
    tracker = seeded_store(db_path.parent)
    copy = pickle.loads(pickle.dumps(tracker))
    sweep = copy.storage.get_sweep("ddp").id
    assert copy.storage.get_curves(sweep, "val_loss") == {0: dict.fromkeys(range(MAX_EPOCHS), 0.6)}
    # the one-query SQL answer equals the interface's default (trial by trial)
    assert copy.storage.get_curves(sweep, "val_loss") == Storage.get_curves(
        copy.storage, sweep, "val_loss"
    )
    assert copy.storage.get_curves(sweep, "nope") == {}
    with pytest.raises(InvalidStorageError, match="in-memory store"):
        pickle.dumps(ExperimentTracker(":memory:"))
    copy.close()
    tracker.close()


# --- DDP ---------------------------------------------------------------------------------------
def seeded_store(folder: Path) -> ExperimentTracker:
    """A store holding one finished peer whose val_loss (0.6) beats rank 0's and not rank 1's."""
    tracker = ExperimentTracker(folder / "ddp.db", sweep="ddp")
    peer = tracker.start_trial({"quality": 0.0}, mode="min")
    assert peer.id is not None
    for epoch in range(MAX_EPOCHS):
        tracker.storage.log_metrics(peer.id, epoch, {"val_loss": 0.6})
    tracker.storage.finish_trial(peer.id, TrialState.COMPLETE, 0.6, epochs=MAX_EPOCHS)
    return tracker


def ddp_fit(folder: str, strategy: str) -> None:
    """One DDP fit (2 CPU processes): rank 0 sees 0.5 + 1/(e+1), rank 1 sees 0.1 lower."""
    tracker = ExperimentTracker(Path(folder) / "ddp.db", sweep="ddp")
    tuner = GridSearchTuner({"quality": [0.5]})
    params = tuner.suggest()
    assert params is not None
    cb = HPOCallback(tuner, monitor="val_loss", tracker=tracker, scheduler=ASHAScheduler(**ASHA))
    model = CurveModel(params["quality"], rank_offset=-1.0)
    end = [EndProcessGroup()] if strategy == "ddp_spawn" else []  # the DDP script ends its own
    t = trainer([cb, EpochRecorder(folder), *end], devices=2, strategy=strategy)
    t.fit(model, *loaders())


def check_ddp_result(folder: Path, tracker: ExperimentTracker) -> None:
    ranks = [json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1)]
    # rank 0 (1.5 at epoch 1 > 0.6) is stopped at rung 1; rank 1 (0.5) alone would go on
    assert ranks == [{"epochs": 1, "world": 2}] * 2
    trials = tracker.trials("ddp")
    assert len(trials) == 2  # the peer and one trial for the fit, not one per rank
    assert (trials[1].state, trials[1].epochs) == (TrialState.PRUNED, 1)
    assert trials[1].value == pytest.approx(1.5)  # rank 0's value


@pytest.mark.slow
def test_ddp_spawn_all_ranks_stop_at_the_same_epoch(tmp_path: Path) -> None:
    tracker = seeded_store(tmp_path)
    ddp_fit(str(tmp_path), "ddp_spawn")
    check_ddp_result(tmp_path, tracker)
    tracker.close()


# the script ends as a DDP script should: without the process group, whose gloo threads may
# otherwise abort the interpreter's exit ("terminate called without an active exception")
DDP_SCRIPT = """
import sys
import torch.distributed as dist
sys.path.insert(0, {tests!r})
from test_callback_scheduler import ddp_fit
ddp_fit({folder!r}, "ddp")
if dist.is_initialized():
    dist.destroy_process_group()
"""


@pytest.mark.slow
def test_ddp_all_ranks_stop_at_the_same_epoch(tmp_path: Path) -> None:
    tracker = seeded_store(tmp_path)
    script = tmp_path / "fit_ddp.py"
    tests = str(Path(__file__).resolve().parent)
    script.write_text(textwrap.dedent(DDP_SCRIPT.format(tests=tests, folder=str(tmp_path))))
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "WORLD_SIZE", "RANK")}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    check_ddp_result(tmp_path, tracker)
    tracker.close()
