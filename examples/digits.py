"""A real Lightning model on scikit-learn's bundled digits data (no download needed).

Used by ``quickstart.py`` and ``digits_sweep.yaml``: ``train`` is the sweep objective.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class DigitsData(pl.LightningDataModule):
    """8x8 digit images (1797 samples), standardised, split 75/25 with a fixed seed."""

    def __init__(self, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        x, y = load_digits(return_X_y=True)
        x = (x / 16.0).astype(np.float32)
        x_tr, x_va, y_tr, y_va = train_test_split(
            x, y, test_size=0.25, random_state=seed, stratify=y
        )
        self.train_set = TensorDataset(torch.from_numpy(x_tr), torch.from_numpy(y_tr))
        self.val_set = TensorDataset(torch.from_numpy(x_va), torch.from_numpy(y_va))
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=512)


class DigitsMLP(pl.LightningModule):
    """A two-layer MLP; its hyper-parameters are what the sweep tunes."""

    def __init__(
        self,
        lr: float = 1e-3,
        hidden: int = 64,
        dropout: float = 0.1,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        if hp.optimizer == "sgd":
            return torch.optim.SGD(
                self.parameters(), lr=hp.lr, momentum=0.9, weight_decay=hp.weight_decay
            )
        return torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)


def quiet_trainer(**kwargs: Any) -> pl.Trainer:
    """A Trainer without progress bars, loggers or checkpoints (fast, quiet sweeps on CPU)."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # torch 2.13 vs Lightning 2.6 noise
    defaults: dict[str, Any] = dict(
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    defaults.update(kwargs)
    return pl.Trainer(**defaults)


def train(params: dict[str, Any], callback: pl.Callback, max_epochs: int = 12) -> None:
    """Sweep objective: fit the MLP with ``params``; the callback reports ``val_acc``."""
    # A model this small trains fastest on one thread; more threads only spin (and, on a
    # busy machine, oversubscribed OpenMP threads make an epoch 10x slower).
    torch.set_num_threads(1)
    torch.manual_seed(0)
    trainer = quiet_trainer(max_epochs=max_epochs, callbacks=[callback])
    trainer.fit(DigitsMLP(**params), datamodule=DigitsData())
