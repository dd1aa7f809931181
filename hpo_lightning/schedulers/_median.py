"""The median stopping rule.

Golovin et al. 2017, "Google Vizier: A Service for Black-Box Optimization", Sec. 3.2.2: stop a
trial at step s if its best objective value by step s is strictly worse than the median of the
running averages of the other trials' objectives reported up to step s.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, ClassVar

from hpo_lightning._trial import Mode, check_int
from hpo_lightning.schedulers._base import (
    Decision,
    LearningCurve,
    Scheduler,
    loss_of,
)


class MedianStoppingScheduler(Scheduler):
    """Stops a trial whose best value so far is worse than the median of its peers.

    At epoch ``e`` the peers are the other trials that reported a value at ``e``; each counts
    by the running average of its values at epochs ``<= e`` (NaN values skipped). The trial
    counts by its best value at epochs ``<= e``. It stops when that is strictly worse than the
    median of the peers.

    Args:
        warmup_epochs: epochs every trial trains before the rule applies (default 1).
        min_trials: peers that must have reported at the epoch for the rule to apply
            (default 3); with fewer, the trial continues.

    Example:
        >>> from hpo_lightning.schedulers import LearningCurve
        >>> peers = [LearningCurve.of(i, [0.5, 0.4]) for i in range(3)]
        >>> s = MedianStoppingScheduler(warmup_epochs=1, min_trials=3)
        >>> s.decide(LearningCurve.of(9, [0.9, 0.8]), peers, mode="min")
        <Decision.STOP: 'stop'>
    """

    name: ClassVar[str] = "median"

    def __init__(self, *, warmup_epochs: int = 1, min_trials: int = 3) -> None:
        self.warmup_epochs = check_int("warmup_epochs", warmup_epochs, at_least=0)
        self.min_trials = check_int("min_trials", min_trials, at_least=1)

    def options(self) -> dict[str, Any]:
        return {"warmup_epochs": self.warmup_epochs, "min_trials": self.min_trials}

    def decide(
        self, curve: LearningCurve, others: Sequence[LearningCurve], *, mode: Mode
    ) -> Decision:
        epoch = curve.last_epoch
        if epoch is None or epoch + 1 <= self.warmup_epochs:
            return Decision.CONTINUE
        averages = []
        for other in others:
            if other.at(epoch) is None:
                continue  # it did not reach this epoch (or did not report at it)
            mean = other.mean_upto(epoch)  # NaN values skipped
            if mean is not None:
                averages.append(loss_of(mean, mode))
        if len(averages) < self.min_trials:
            return Decision.CONTINUE
        best = min(loss_of(v, mode) for v in curve.upto(epoch))
        return Decision.STOP if best > statistics.median(averages) else Decision.CONTINUE
