"""A LightningCLI subclass on ``pytorch_lightning.cli`` (the ``cli: {class: ...}`` form), with a
tiny model on scikit-learn's wine data; the config names the model by ``class_path``."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LightningCLI
from sklearn.datasets import load_wine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class WineModel(pl.LightningModule):
    def __init__(self, hidden: int = 8, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(13, hidden), nn.ReLU(), nn.Linear(hidden, 3))
        x, y = load_wine(return_X_y=True)
        x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
        self.data = TensorDataset(x, torch.tensor(y))

    def training_step(self, batch: Any, _: int) -> Any:
        xb, yb = batch
        return nn.functional.cross_entropy(self.net(xb), yb)

    def validation_step(self, batch: Any, _: int) -> None:
        xb, yb = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(xb), yb))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=32, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=256)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class WineCLI(LightningCLI):
    """Its own defaults: no saved config."""

    def __init__(self, **kwargs: Any) -> None:
        torch.set_num_threads(1)
        super().__init__(save_config_callback=None, **kwargs)
