"""The digits MLP as a multi-objective problem: accuracy against model size and latency.

``train`` logs ``val_acc`` and ``params_k`` (thousands of weights) at every validation and
``latency_ms`` (measured milliseconds per 256-image batch on this machine) at the last one.
``digits_mo_sweep.yaml`` maximises val_acc, minimises params_k and keeps latency_ms <= 0.1 as a
constraint: hpo-lightning sweep examples/digits_mo_sweep.yaml, then hpo-lightning best
examples/digits_mo_sweep.yaml prints the Pareto front.
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch
from digits import DigitsData, DigitsMLP, quiet_trainer


class SizedDigitsMLP(DigitsMLP):
    """DigitsMLP that also logs its size, and its measured latency at the last epoch."""

    def on_validation_epoch_end(self) -> None:
        n_weights = sum(p.numel() for p in self.parameters())
        self.log("params_k", n_weights / 1000.0)
        if self.trainer.sanity_checking or self.current_epoch != self.trainer.max_epochs - 1:
            return
        self.log("latency_ms", measure_latency_ms(self.net, n_inputs=64))


def measure_latency_ms(net: torch.nn.Module, *, n_inputs: int, batch: int = 256) -> float:
    """Median milliseconds of one forward pass over a batch (eval mode, no grad)."""
    x = torch.randn(batch, n_inputs)
    was_training = net.training
    net.eval()
    times = []
    with torch.no_grad():
        for _ in range(15):
            start = time.perf_counter()
            net(x)
            times.append((time.perf_counter() - start) * 1000.0)
    net.train(was_training)
    return sorted(times)[len(times) // 2]


def train(params: dict[str, Any], callback: pl.Callback, max_epochs: int = 8) -> None:
    """Sweep objective: fit the MLP with ``params``; the callback reads every objective."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    trainer = quiet_trainer(max_epochs=max_epochs, callbacks=[callback])
    trainer.fit(SizedDigitsMLP(**params), datamodule=DigitsData())
