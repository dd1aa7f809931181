"""Asynchronous successive halving (ASHA).

Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning" (MLSys), Algorithm 2:
rungs at ``r * eta**k`` units of resource (here epochs); a trial at rung k is promoted when it is
among the top ``1/eta`` of the trials that reached rung k so far. We use the stopping form of
the rule (as a callback must): a trial reaching a rung is compared, right away, with every trial
that reported at that rung before it, and goes on only if it ranks in the top
``max(1, floor(n / eta))`` of those ``n`` values (itself included). Trials that arrive early
at a rung are judged against fewer peers, which is the price of never waiting (ASHA Sec. 3.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from hpo_lightning._trial import Mode, check_int
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.schedulers._base import (
    Decision,
    LearningCurve,
    Scheduler,
    loss_of,
)


def rung_epochs(min_epochs: int, reduction_factor: int, max_epochs: int) -> tuple[int, ...]:
    """Epoch counts at which trials are compared: ``min_epochs * reduction_factor**k < max``."""
    rungs = []
    r = min_epochs
    while r < max_epochs:
        rungs.append(r)
        r *= reduction_factor
    return tuple(rungs)


def promoted(loss: float, peer_losses: Sequence[float], reduction_factor: int) -> bool:
    """ASHA's promotion rule: is ``loss`` in the top ``max(1, n // eta)`` of the ``n`` values?

    ``n`` counts the trial itself and its peers at the rung; ties favour the trial.
    """
    n = len(peer_losses) + 1
    keep = max(1, n // reduction_factor)
    better = sum(1 for p in peer_losses if p < loss)
    return better < keep


def check_budget(min_epochs: Any, reduction_factor: Any, max_epochs: Any) -> tuple[int, int, int]:
    """Validate the (min_epochs, reduction_factor, max_epochs) options shared by ASHA/Hyperband."""
    r = check_int("min_epochs", min_epochs, at_least=1)
    eta = check_int("reduction_factor", reduction_factor, at_least=2)
    big_r = check_int("max_epochs", max_epochs, at_least=1)
    if r > big_r:
        raise UserInputError(
            f"`min_epochs` <= `max_epochs` must hold, but got min_epochs={r}, max_epochs={big_r}"
        )
    return r, eta, big_r


class ASHAScheduler(Scheduler):
    """Asynchronous successive halving: at each rung keep the top ``1/reduction_factor``.

    Rungs are at ``min_epochs * reduction_factor**k`` epochs, below ``max_epochs``. With the
    defaults a trial is compared after 1, 3, 9, 27 and 81 epochs. Between rungs, and after the
    last one, it always continues (the Trainer's ``max_epochs`` ends it).

    Args:
        min_epochs: epochs every trial trains (the first rung), >= 1.
        reduction_factor: eta, >= 2: one trial in eta goes on at each rung.
        max_epochs: the full budget; rungs lie strictly below it. Use the Trainer's
            ``max_epochs``.

    Example:
        >>> from hpo_lightning.schedulers import LearningCurve
        >>> s = ASHAScheduler(min_epochs=1, reduction_factor=2, max_epochs=8)
        >>> s.rungs
        (1, 2, 4)
        >>> s.decide(LearningCurve.of(1, [0.9]), [LearningCurve.of(0, [0.5])], mode="min")
        <Decision.STOP: 'stop'>
    """

    name: ClassVar[str] = "asha"

    def __init__(
        self, *, min_epochs: int = 1, reduction_factor: int = 3, max_epochs: int = 100
    ) -> None:
        self.min_epochs, self.reduction_factor, self.max_epochs = check_budget(
            min_epochs, reduction_factor, max_epochs
        )
        self.rungs = rung_epochs(self.min_epochs, self.reduction_factor, self.max_epochs)

    def options(self) -> dict[str, Any]:
        return {
            "min_epochs": self.min_epochs,
            "reduction_factor": self.reduction_factor,
            "max_epochs": self.max_epochs,
        }

    def decide(
        self, curve: LearningCurve, others: Sequence[LearningCurve], *, mode: Mode
    ) -> Decision:
        epoch, value = curve.last_epoch, curve.last
        if epoch is None or value is None or epoch + 1 not in self.rungs:
            return Decision.CONTINUE
        peers = [loss_of(v, mode) for o in others if (v := o.at(epoch)) is not None]
        ok = promoted(loss_of(value, mode), peers, self.reduction_factor)
        return Decision.CONTINUE if ok else Decision.STOP
