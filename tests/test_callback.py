"""HPOCallback with real Lightning fits (tiny model, CPU, 3 epochs) under both namespaces."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from hpo_lightning import (
    EpochEnd,
    EpochStart,
    ExperimentTracker,
    Float,
    HPOCallback,
    SearchSpace,
    TrainingEvent,
    TrainingFinish,
    TrialState,
    make_tuner,
)
from hpo_lightning.exceptions import InvalidMetricError, MetricNotFoundError, UserInputError

pytestmark = pytest.mark.slow
EPOCHS = 3


@pytest.fixture(params=["pytorch_lightning", "lightning.pytorch"])
def pl(request: pytest.FixtureRequest) -> ModuleType:
    """The Lightning namespace under test: the Trainer and LightningModule come from it."""
    return importlib.import_module(request.param)


def make_model(pl: ModuleType, lr: float, *, behaviour: str = "ok") -> Any:
    """A one-layer regression model; ``behaviour`` selects a way to misbehave."""

    class Tiny(pl.LightningModule):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)
            self.lr = lr

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if behaviour == "raise" and self.current_epoch == 1:
                raise RuntimeError("exploded in training_step")
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss, on_epoch=True, on_step=False)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            if behaviour == "nan":
                loss = loss * math.nan
            if behaviour not in ("missing", "vector"):
                self.log("val_loss", loss)
            self.log("val_mae", (self.layer(x) - y).abs().mean())

        def on_validation_epoch_end(self) -> None:
            if behaviour == "vector" and not self.trainer.sanity_checking:
                self.trainer.callback_metrics["val_loss"] = torch.ones(3)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.lr)

    return Tiny()


def loaders() -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    y = x.sum(dim=1, keepdim=True)
    data = torch.utils.data.TensorDataset(x, y)
    return (
        torch.utils.data.DataLoader(data, batch_size=16),
        torch.utils.data.DataLoader(data, batch_size=32),
    )


def fit(pl: ModuleType, model: Any, callback: HPOCallback) -> None:
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=1,
    )
    train, val = loaders()
    trainer.fit(model, train, val)


class Recorder:
    """An observer that keeps every event it receives."""

    def __init__(self) -> None:
        self.events: list[TrainingEvent] = []

    def on_event(self, event: TrainingEvent) -> None:
        self.events.append(event)


SPACE = SearchSpace({"lr": Float(1e-3, 1e-1, log=True)})


@pytest.fixture
def setup(db_path: Path) -> Any:
    tuner = make_tuner("tpe", SPACE, mode="min", seed=0, max_trials=5)
    tracker = ExperimentTracker(db_path)
    recorder = Recorder()
    callback = HPOCallback(tuner, monitor="val_loss", tracker=tracker, observers=[recorder])
    yield tuner, tracker, recorder, callback
    tracker.close()


def test_a_fit_publishes_events_records_the_trial_and_feeds_the_tuner(
    pl: ModuleType, setup: Any
) -> None:
    tuner, tracker, recorder, callback = setup
    params = tuner.suggest()
    fit(pl, make_model(pl, **params), callback)

    kinds = [(type(e).__name__, getattr(e, "epoch", None)) for e in recorder.events]
    expected = [(k, ep) for ep in range(EPOCHS) for k in ("EpochStart", "EpochEnd")]
    assert kinds == [*expected, ("TrainingFinish", None)]  # the sanity check is not reported
    ends = [e for e in recorder.events if isinstance(e, EpochEnd)]
    assert all({"val_loss", "val_mae", "train_loss"} <= set(e.metrics) for e in ends)
    assert all(e.value == e.metrics["val_loss"] for e in ends)
    finish = recorder.events[-1]
    assert isinstance(finish, TrainingFinish)
    values = [e.value for e in ends if e.value is not None]
    assert finish.state is TrialState.COMPLETE and finish.best_metric == min(values)
    assert finish.epochs == EPOCHS and dict(finish.best_params) == params
    assert {e.trial.id for e in recorder.events} == {tracker.trials()[0].id}

    (stored,) = tracker.trials()
    assert stored.state is TrialState.COMPLETE and stored.value == pytest.approx(min(values))
    assert stored.params == params and stored.epochs == EPOCHS and stored.tuner == "tpe"
    per_epoch = tracker.storage.get_metrics(stored.id)
    assert sorted(per_epoch) == list(range(EPOCHS))
    assert [per_epoch[ep]["val_loss"] for ep in range(EPOCHS)] == pytest.approx(values)

    assert tuner.pending == []
    (obs,) = tuner.observations
    assert obs.params == params and obs.value == pytest.approx(min(values))


def test_one_callback_serves_several_fits(pl: ModuleType, setup: Any) -> None:
    tuner, tracker, recorder, callback = setup
    for _ in range(2):
        params = tuner.suggest()
        fit(pl, make_model(pl, **params), callback)
    assert [t.number for t in tracker.trials()] == [0, 1]
    assert len(tuner.observations) == 2 and tuner.n_known == 2
    starts = [e for e in recorder.events if isinstance(e, EpochStart)]
    assert [e.trial.number for e in starts] == [0] * EPOCHS + [1] * EPOCHS


def test_a_monitor_never_logged_lists_the_logged_keys(pl: ModuleType, setup: Any) -> None:
    tuner, tracker, _, callback = setup
    params = tuner.suggest()
    with pytest.raises(MetricNotFoundError, match=r"'val_loss' was never logged.*val_mae"):
        fit(pl, make_model(pl, **params, behaviour="missing"), callback)
    (stored,) = tracker.trials()
    assert stored.state is TrialState.FAILED and "MetricNotFoundError" in (stored.message or "")


def test_a_multi_element_metric_is_an_invalid_metric(pl: ModuleType, setup: Any) -> None:
    tuner, _, _, callback = setup
    params = tuner.suggest()
    with pytest.raises(InvalidMetricError, match=r"'val_loss' must be a scalar.*3 elements"):
        fit(pl, make_model(pl, **params, behaviour="vector"), callback)


def test_a_nan_metric_fails_the_trial(pl: ModuleType, setup: Any) -> None:
    tuner, tracker, recorder, callback = setup
    params = tuner.suggest()
    fit(pl, make_model(pl, **params, behaviour="nan"), callback)
    assert all(math.isnan(e.value or 0.0) for e in recorder.events if isinstance(e, EpochEnd))
    (stored,) = tracker.trials()
    assert stored.state is TrialState.FAILED and "diverged" in (stored.message or "")
    assert tuner.observations[0].state is TrialState.FAILED
    assert tuner.pending == []


def test_an_exception_in_training_step_fails_the_trial(pl: ModuleType, setup: Any) -> None:
    tuner, tracker, recorder, callback = setup
    params = tuner.suggest()
    with pytest.raises(RuntimeError, match="exploded"):
        fit(pl, make_model(pl, **params, behaviour="raise"), callback)
    (stored,) = tracker.trials()
    assert stored.state is TrialState.FAILED
    assert "RuntimeError: exploded in training_step" in (stored.message or "")
    assert tuner.observations[0].state is TrialState.FAILED and tuner.pending == []
    finish = recorder.events[-1]
    assert isinstance(finish, TrainingFinish) and finish.state is TrialState.FAILED


def test_fit_without_a_suggestion_is_a_clear_error(pl: ModuleType, setup: Any) -> None:
    _, _, _, callback = setup
    with pytest.raises(UserInputError, match=r"call tuner.suggest\(\)"):
        fit(pl, make_model(pl, lr=0.01), callback)


def test_callback_arguments_are_validated() -> None:
    tuner = make_tuner("random", SPACE, mode="max", seed=0)
    with pytest.raises(UserInputError, match="differs from the tuner's mode='max'"):
        HPOCallback(tuner, monitor="val_acc", mode="min")
    with pytest.raises(UserInputError, match="`monitor` must be the name"):
        HPOCallback(tuner, monitor="")
    with pytest.raises(UserInputError, match="`mode` must be 'min' or 'max'"):
        HPOCallback(tuner, monitor="val_acc", mode="maximize")
