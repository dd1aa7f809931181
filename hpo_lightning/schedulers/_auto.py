"""``scheduler: auto``: an early-stopping rule chosen from the training budget.

The rule (:func:`choose_scheduler`), from ``benchmarks/bench_multifidelity.py`` (real learning
curves of small scikit-learn models, every scheduler x tuner pairing at equal total epochs;
figures in docs/schedulers.md):

* **No stopping** when a trial trains fewer than :data:`MIN_EPOCHS_TO_STOP` epochs: there is no
  epoch early enough to save budget that is not also dominated by first-epoch noise.
* **The median rule** otherwise, and when ``max_epochs`` is unknown (it needs no budget). It
  compares a trial's best value with the running averages of its peers, which smooths the noise
  of single epochs, and it stops a trial wherever it falls behind rather than only at rungs; on
  the benchmark it was the most robust across tuners (with ``tpe``, ASHA and Hyperband lost to
  random search without stopping, the median rule did not).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from hpo_lightning._trial import Mode, check_int
from hpo_lightning.schedulers._base import (
    Decision,
    Exploit,
    LearningCurve,
    NoScheduler,
    Scheduler,
)
from hpo_lightning.schedulers._median import MedianStoppingScheduler

logger = logging.getLogger("hpo_lightning")

MIN_EPOCHS_TO_STOP = 4


def choose_scheduler(max_epochs: int | None) -> tuple[Scheduler, str]:
    """The scheduler ``auto`` uses for trials of ``max_epochs`` epochs, and why, in words."""
    if max_epochs is not None and max_epochs < MIN_EPOCHS_TO_STOP:
        return NoScheduler(), (
            f"trials train {max_epochs} epoch(s), fewer than {MIN_EPOCHS_TO_STOP}: stopping "
            "one would judge it on first-epoch noise and save little"
        )
    budget = "an unknown number of" if max_epochs is None else f"{max_epochs}"
    return MedianStoppingScheduler(), (
        f"trials train {budget} epochs: the median rule (running averages of the peers) was "
        "the most robust early stopping across tuners on benchmarks/bench_multifidelity.py"
    )


class AutoScheduler(Scheduler):
    """Picks an early-stopping rule from the trials' epoch budget, then delegates to it.

    The choice (see :func:`choose_scheduler`) is exposed as ``scheduler``, its name as
    ``chosen`` and the reason as ``reason``; it is logged on the ``hpo_lightning`` logger at
    INFO level.

    Args:
        max_epochs: the Trainer's ``max_epochs``, or None when unknown.

    Example:
        >>> AutoScheduler(max_epochs=30).chosen
        'median'
        >>> AutoScheduler(max_epochs=2).chosen
        'none'
    """

    name: ClassVar[str] = "auto"

    def __init__(self, *, max_epochs: int | None = None) -> None:
        self.max_epochs = check_int("max_epochs", max_epochs, at_least=1, allow_none=True)
        self.scheduler, self.reason = choose_scheduler(self.max_epochs)
        self.chosen = self.scheduler.name
        logger.info("scheduler 'auto' chose '%s': %s", self.chosen, self.reason)

    def options(self) -> dict[str, Any]:
        return {"max_epochs": self.max_epochs}

    def expected_cost(self) -> float | None:
        return self.scheduler.expected_cost()

    def decide(
        self, curve: LearningCurve, others: Sequence[LearningCurve], *, mode: Mode
    ) -> Decision | Exploit:
        return self.scheduler.decide(curve, others, mode=mode)
