"""A LightningCLI project on scikit-learn's bundled digits data (no download needed).

Train it as any LightningCLI project::

    python examples/cli/train.py fit --config examples/cli/base.yaml

and sweep it without changing a line (``sweep.yaml`` names the script, its config and the
CLI's own dotted keys, including a conditional optimizer space)::

    hpo-lightning sweep examples/cli/sweep.yaml
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal

import lightning.pytorch as L
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

for _name in ("lightning.pytorch", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # torch 2.13 vs Lightning 2.6 noise


class DigitsData(L.LightningDataModule):
    """8x8 digit images (1797 samples), split 75/25 with a fixed seed.

    Args:
        batch_size: training batch size.
        seed: seed of the train/validation split.
    """

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


class DigitsClassifier(L.LightningModule):
    """An MLP whose optimizer is chosen by name; each optimizer reads its own arguments.

    Args:
        hidden: width of the hidden layer.
        optimizer: ``"adam"`` (uses ``beta1``) or ``"sgd"`` (uses ``momentum``).
        lr: learning rate.
        beta1: Adam's first-moment decay.
        momentum: SGD's momentum.
        weight_decay: L2 penalty of either optimizer.
    """

    def __init__(
        self,
        hidden: int = 64,
        optimizer: Literal["adam", "sgd"] = "adam",
        lr: float = 1e-3,
        beta1: float = 0.9,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        if hp.optimizer == "sgd":
            return torch.optim.SGD(
                self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay
            )
        return torch.optim.Adam(
            self.parameters(), lr=hp.lr, betas=(hp.beta1, 0.999), weight_decay=hp.weight_decay
        )
