"""Objectives for the sweep tests (imported by sweep files as ``sweep_objectives:<name>``)."""

from __future__ import annotations

import math
import os
import time
from typing import Any


def quadratic(params: dict[str, Any], callback: Any) -> float:
    """A fast objective without Lightning: it returns the metric."""
    return (params["x"] - 0.3) ** 2 + (params.get("y", 0) - 2) ** 2 / 10


def slow_quadratic(params: dict[str, Any], callback: Any, delay: float = 0.3) -> float:
    """Like quadratic, but each trial takes ``delay`` seconds and leaves a marker file."""
    marker_dir = os.environ.get("HPO_TEST_MARKERS")
    if marker_dir:
        with open(os.path.join(marker_dir, f"start-{os.getpid()}-{time.time_ns()}"), "w"):
            pass
    time.sleep(delay)
    return quadratic(params, callback)


def sleeper(params: dict[str, Any], callback: Any, seconds: float = 1.0) -> float:
    time.sleep(seconds)
    return float(params["x"])


def failing(params: dict[str, Any], callback: Any) -> float:
    raise RuntimeError(f"boom at x={params['x']:.3f}")


def sometimes_nan(params: dict[str, Any], callback: Any) -> float:
    return math.nan if params["x"] > 0.5 else params["x"]


def lightning_fit(params: dict[str, Any], callback: Any, max_epochs: int = 2) -> None:
    """A tiny real Lightning fit on scikit-learn's wine data."""
    import pytorch_lightning as pl
    import torch
    from sklearn.datasets import load_wine
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    x, y = load_wine(return_X_y=True)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    ds = TensorDataset(x, torch.tensor(y))

    class Net(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(13, params["hidden"]), nn.ReLU(), nn.Linear(params["hidden"], 3)
            )

        def training_step(self, batch: Any, _: int) -> Any:
            xb, yb = batch
            return nn.functional.cross_entropy(self.net(xb), yb)

        def validation_step(self, batch: Any, _: int) -> None:
            xb, yb = batch
            self.log("val_acc", (self.net(xb).argmax(-1) == yb).float().mean())

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=params["lr"])

    torch.manual_seed(0)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(Net(), DataLoader(ds, batch_size=64, shuffle=True), DataLoader(ds, batch_size=256))


def wrong_monitor(params: dict[str, Any], callback: Any) -> None:
    """Fits with the callback but logs a different key than the sweep monitors."""
    lightning_fit(params, callback, max_epochs=1)


def devices_sleeper(params: dict[str, Any], callback: Any, seconds: float = 0.2) -> float:
    """Sleeps; the worker stores the CUDA_VISIBLE_DEVICES it ran with in the trial's attrs."""
    time.sleep(seconds)
    return float(params["x"])
