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


def _wine() -> Any:
    """scikit-learn's bundled wine data, standardised, as a TensorDataset."""
    import torch
    from sklearn.datasets import load_wine
    from torch.utils.data import TensorDataset

    x, y = load_wine(return_X_y=True)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    return TensorDataset(x, torch.tensor(y))


def lightning_fit(
    params: dict[str, Any], callback: Any, max_epochs: int = 2, log_size: bool = False
) -> None:
    """A tiny real Lightning fit on scikit-learn's wine data (``log_size``: see sized_fit)."""
    import pytorch_lightning as pl
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    ds = _wine()

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

        def on_validation_epoch_end(self) -> None:
            if not log_size:
                return
            self.log("params_k", sum(p.numel() for p in self.parameters()) / 1000.0)
            if not self.trainer.sanity_checking and self.current_epoch == max_epochs - 1:
                self.log("width", float(params["hidden"]))

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


def _marker(kind: str, **data: Any) -> None:
    """Leave a JSON marker in $HPO_TEST_MARKERS (what a trial saw, from inside it)."""
    import json

    marker_dir = os.environ.get("HPO_TEST_MARKERS")
    if not marker_dir:
        return
    name = f"{kind}-{os.getpid()}-{time.time_ns()}"
    with open(os.path.join(marker_dir, name), "w", encoding="utf-8") as fh:
        json.dump(data, fh)


def record_devices(params: dict[str, Any], callback: Any, delay: float = 0.4) -> float:
    """Records the CUDA_VISIBLE_DEVICES it ran with and when (for GPU placement tests)."""
    start = time.time()
    time.sleep(delay)
    _marker(
        "devices",
        devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        start=start,
        end=time.time(),
        x=params["x"],
    )
    return float(params["x"])


def self_kill(params: dict[str, Any], callback: Any) -> float:
    """Kills its own process (like a segfault or the OOM killer) when x > 0.5."""
    import signal

    if params["x"] > 0.5:
        _marker("kill", x=params["x"])
        os.kill(os.getpid(), signal.SIGKILL)
    return float(params["x"])


def lightning_epochs(
    params: dict[str, Any],
    callback: Any,
    max_epochs: int = 30,
    epoch_delay: float = 0.2,
    devices: int = 1,
    strategy: str = "auto",
) -> None:
    """A real Lightning fit on wine whose epochs take ``epoch_delay`` seconds; every rank
    leaves a marker with the params it built its model from and the epochs it trained."""
    import pytorch_lightning as pl
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    ds = _wine()

    class Net(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(
                nn.Linear(13, params["hidden"]), nn.ReLU(), nn.Linear(params["hidden"], 3)
            )

        def training_step(self, batch: Any, _: int) -> Any:
            xb, yb = batch
            return nn.functional.cross_entropy(self.net(xb), yb)

        def validation_step(self, batch: Any, _: int) -> None:
            time.sleep(epoch_delay)
            xb, yb = batch
            acc = (self.net(xb).argmax(-1) == yb).float().mean()
            self.log("val_acc", acc, sync_dist=True)

        def on_fit_start(self) -> None:
            _marker(
                "fit",
                rank=self.global_rank,
                params=dict(params),
                shape=list(self.net[0].weight.shape),
                trial=os.environ.get("HPO_LIGHTNING_TRIAL"),
            )

        def on_train_end(self) -> None:
            _marker("end", rank=self.global_rank, epochs=self.current_epoch, params=dict(params))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=params["lr"])

    trainer = pl.Trainer(
        max_epochs=max_epochs,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=devices,
        strategy=strategy,
        num_sanity_val_steps=0,
    )
    trainer.fit(Net(), DataLoader(ds, batch_size=32, shuffle=True), DataLoader(ds, batch_size=256))


def conditional(params: dict[str, Any], callback: Any) -> float:
    """A conditional objective: each optimizer branch reads only its own parameters."""
    if params["optimizer"] == "sgd":
        if "beta1" in params:
            raise KeyError("beta1 reached an sgd trial")
        return (params["momentum"] - 0.9) ** 2
    if "momentum" in params:
        raise KeyError("momentum reached an adam trial")
    return (params["beta1"] - 0.95) ** 2 + 0.01


def lightning_resumable(
    params: dict[str, Any], callback: Any, max_epochs: int = 6, epoch_delay: float = 0.2
) -> None:
    """A real Lightning fit on wine that logs its global step (``gstep``) every epoch and leaves
    a ``start`` marker with the epoch and global step its training starts from."""
    import pytorch_lightning as pl
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    torch.set_num_threads(1)
    torch.manual_seed(0)
    ds = _wine()

    class Net(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(13, 8), nn.ReLU(), nn.Linear(8, 3))

        def training_step(self, batch: Any, _: int) -> Any:
            xb, yb = batch
            return nn.functional.cross_entropy(self.net(xb), yb)

        def validation_step(self, batch: Any, _: int) -> None:
            time.sleep(epoch_delay)
            xb, yb = batch
            self.log("val_acc", (self.net(xb).argmax(-1) == yb).float().mean())
            self.log("gstep", float(self.global_step))

        def on_train_start(self) -> None:
            _marker("start", epoch=self.current_epoch, step=self.global_step)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=params["lr"], momentum=0.9)

    trainer = pl.Trainer(
        max_epochs=max_epochs,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        num_sanity_val_steps=0,
    )
    trainer.fit(Net(), DataLoader(ds, batch_size=32, shuffle=True), DataLoader(ds, batch_size=256))


def sized_fit(params: dict[str, Any], callback: Any, max_epochs: int = 1) -> None:
    """``lightning_fit`` that also logs the model's size: ``params_k`` (thousands of weights)
    at every validation and ``width`` (the hidden width) once, at the last one."""
    lightning_fit(params, callback, max_epochs=max_epochs, log_size=True)


def two_objectives(params: dict[str, Any], callback: Any, delay: float = 0.0) -> dict[str, float]:
    """A fast objective of two conflicting metrics (no Lightning): ``f1`` rises and ``f2``
    falls with x; ``size`` (constrained in the tests) is y. Sleeps ``delay`` seconds."""
    time.sleep(delay)
    x, y = float(params["x"]), float(params["y"])
    return {"f1": x + 0.2 * y, "f2": (1.0 - x) ** 2 + 0.1 * y, "size": y}
