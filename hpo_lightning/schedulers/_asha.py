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

import math
import statistics
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


def halving_cost(rungs: Sequence[int], reduction_factor: int, max_epochs: int) -> float:
    """Expected epochs of a trial over ``max_epochs`` when each rung keeps ``1/eta`` of the
    trials that reach it (the geometry of successive halving, Li et al. 2020, Sec. 3).

    A lower bound with a noise margin or a peer minimum, which keep more trials going.
    """
    epochs, reach = 0.0, 1.0
    for r in rungs:
        epochs += reach * (1 - 1 / reduction_factor) * r  # stopped at this rung
        reach /= reduction_factor
    return (epochs + reach * max_epochs) / max_epochs


DEFAULT_NOISE_MARGIN = 5.0


def default_min_epochs(max_epochs: int, reduction_factor: int) -> int:
    """The default first rung: ``ceil(max_epochs / reduction_factor**2)`` epochs, at least 1.

    So at most two rungs lie below ``max_epochs`` and no trial is judged before it trained
    about a ninth of its budget (eta = 3): on ``benchmarks/bench_multifidelity.py`` a first
    rung after one epoch stopped trials on noisy first-epoch values (see docs/schedulers.md).
    """
    return max(1, math.ceil(max_epochs / reduction_factor**2))


def check_budget(min_epochs: Any, reduction_factor: Any, max_epochs: Any) -> tuple[int, int, int]:
    """Validate the (min_epochs, reduction_factor, max_epochs) options shared by ASHA/Hyperband;
    ``min_epochs=None`` is :func:`default_min_epochs`."""
    eta = check_int("reduction_factor", reduction_factor, at_least=2)
    big_r = check_int("max_epochs", max_epochs, at_least=1)
    if min_epochs is None:
        return default_min_epochs(big_r, eta), eta, big_r
    r = check_int("min_epochs", min_epochs, at_least=1)
    if r > big_r:
        raise UserInputError(
            f"`min_epochs` <= `max_epochs` must hold, but got min_epochs={r}, max_epochs={big_r}"
        )
    return r, eta, big_r


def epoch_noise(others: Sequence[LearningCurve], epoch: int) -> float:
    """The median change ``|value(epoch) - value(epoch - 1)|`` over the trials that reported
    both (finite values only): how much one epoch moves a curve here, 0.0 if nobody tells."""
    changes = []
    for o in others:
        a, b = o.at(epoch), o.at(epoch - 1)
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
            changes.append(abs(a - b))
    return float(statistics.median(changes)) if changes else 0.0


def within_noise(
    loss: float, peer_losses: Sequence[float], reduction_factor: int, margin: float
) -> bool:
    """Is ``loss`` within ``margin`` of the worst value that :func:`promoted` keeps?"""
    n = len(peer_losses) + 1
    keep = max(1, n // reduction_factor)
    cutoff = sorted([*peer_losses, loss])[keep - 1]
    return loss <= cutoff + margin


def check_noise_margin(noise_margin: Any, min_epochs: Any) -> float:
    """``noise_margin``, or its default: 5.0 with the default first rung, else 0.0."""
    if noise_margin is None:
        return DEFAULT_NOISE_MARGIN if min_epochs is None else 0.0
    if isinstance(noise_margin, bool) or not isinstance(noise_margin, (int, float)):
        raise UserInputError(f"`noise_margin` must be a number >= 0, but got {noise_margin!r}")
    if not noise_margin >= 0:
        raise UserInputError(f"`noise_margin` must be >= 0, but got {noise_margin!r}")
    return float(noise_margin)


def check_min_peers(min_peers: Any, min_epochs: Any, reduction_factor: int) -> int:
    """``min_peers``, or its default: ``reduction_factor`` with the default first rung, else 0
    (a first rung set by hand gets the textbook rule, which has no minimum)."""
    if min_peers is None:
        return reduction_factor if min_epochs is None else 0
    return check_int("min_peers", min_peers, at_least=0)


class ASHAScheduler(Scheduler):
    """Asynchronous successive halving: at each rung keep the top ``1/reduction_factor``.

    Rungs are at ``min_epochs * reduction_factor**k`` epochs, below ``max_epochs``. By default
    the first rung is ``ceil(max_epochs / reduction_factor**2)`` (a grace period), so with
    ``max_epochs=30`` trials are compared after 4 and 12 epochs, a trial is only stopped at a
    rung where at least ``reduction_factor`` other trials reported (with fewer there is no top
    ``1/reduction_factor`` to speak of), and not when it is behind the last trial kept by less
    than five typical epoch-to-epoch changes (noise, not evidence). Between rungs, and after
    the last one, it always continues (the Trainer's ``max_epochs`` ends it).

    Args:
        min_epochs: epochs every trial trains (the first rung), >= 1; None (default): the
            grace period above.
        reduction_factor: eta, >= 2: one trial in eta goes on at each rung.
        max_epochs: the full budget; rungs lie strictly below it. Use the Trainer's
            ``max_epochs``.
        min_peers: other trials that must have reported at a rung before it stops anyone;
            None (default): ``reduction_factor`` when ``min_epochs`` is None, else 0 (the
            textbook rule of Li et al. for a hand-set first rung).
        noise_margin: a trial outside the top ``1/reduction_factor`` still goes on when its
            value is within ``noise_margin`` epoch-to-epoch changes (:func:`epoch_noise`, the
            median over the peers at the rung) of the worst value kept; None (default): 5.0
            when ``min_epochs`` is None, else 0.0 (the textbook rule).

    Example:
        >>> from hpo_lightning.schedulers import LearningCurve
        >>> ASHAScheduler(max_epochs=30).rungs
        (4, 12)
        >>> s = ASHAScheduler(min_epochs=1, reduction_factor=2, max_epochs=8)
        >>> s.rungs
        (1, 2, 4)
        >>> s.decide(LearningCurve.of(1, [0.9]), [LearningCurve.of(0, [0.5])], mode="min")
        <Decision.STOP: 'stop'>
    """

    name: ClassVar[str] = "asha"

    def __init__(
        self,
        *,
        min_epochs: int | None = None,
        reduction_factor: int = 3,
        max_epochs: int = 100,
        min_peers: int | None = None,
        noise_margin: float | None = None,
    ) -> None:
        self.min_epochs, self.reduction_factor, self.max_epochs = check_budget(
            min_epochs, reduction_factor, max_epochs
        )
        self.min_peers = check_min_peers(min_peers, min_epochs, self.reduction_factor)
        self.noise_margin = check_noise_margin(noise_margin, min_epochs)
        self.rungs = rung_epochs(self.min_epochs, self.reduction_factor, self.max_epochs)

    def options(self) -> dict[str, Any]:
        return {
            "min_epochs": self.min_epochs,
            "reduction_factor": self.reduction_factor,
            "max_epochs": self.max_epochs,
            "min_peers": self.min_peers,
            "noise_margin": self.noise_margin,
        }

    def expected_cost(self) -> float:
        """:func:`halving_cost` of the rungs: 0.29 with the defaults and ``max_epochs=30``."""
        return halving_cost(self.rungs, self.reduction_factor, self.max_epochs)

    def decide(
        self, curve: LearningCurve, others: Sequence[LearningCurve], *, mode: Mode
    ) -> Decision:
        epoch, value = curve.last_epoch, curve.last
        if epoch is None or value is None or epoch + 1 not in self.rungs:
            return Decision.CONTINUE
        peers = [loss_of(v, mode) for o in others if (v := o.at(epoch)) is not None]
        if len(peers) < self.min_peers:
            return Decision.CONTINUE
        loss = loss_of(value, mode)
        if promoted(loss, peers, self.reduction_factor):
            return Decision.CONTINUE
        if self.noise_margin > 0:
            margin = self.noise_margin * epoch_noise(others, epoch)
            if within_noise(loss, peers, self.reduction_factor, margin):
                return Decision.CONTINUE  # behind, but by less than a few epochs' jitter
        return Decision.STOP
